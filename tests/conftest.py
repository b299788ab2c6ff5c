"""Shared fixtures: run the installed `alcli` in a subprocess with real pipes; find the shared data."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs a fixed set of examples (no flaky discoveries at submission time); locally hypothesis explores.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "samples" / "mnist5k.h5"


def alcli_exe() -> str:
    here = Path(sys.executable).parent / "alcli"
    found = str(here) if here.exists() else shutil.which("alcli")
    if not found:
        raise RuntimeError("the alcli entry point is not installed (run `make test`)")
    return found


def foreground() -> None:
    """preexec_fn for a child that a test interrupts: SIGINT at its default, as in a terminal's foreground job.
    A test run started in the background (`cmd &`, nohup, some CI runners) inherits SIGINT ignored, and
    alcli rightly keeps an inherited ignore (tests/test_reliability.py), so Ctrl-C tests would see exit 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_alcli(*args: str, input: bytes | None = None, cwd: str | os.PathLike | None = None,
              check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `alcli ARGS...`; stdout stays bytes (artifacts may flow through it), stderr is text."""
    proc = subprocess.run([alcli_exe(), *map(str, args)], input=input, capture_output=True, cwd=cwd,
                          timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"alcli {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def shell(script: str, cwd: str | os.PathLike, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a bash pipeline with the venv's alcli first on PATH."""
    env = dict(os.environ, PATH=f"{Path(alcli_exe()).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, exactly one line on stderr, naming what it should."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


def has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Lines a test wants in the run's closing summary: shown even with -q (in a serial run; under -n they stay
# in the worker).
SUMMARY: list[str] = []
# Fuzz cases run by the current test (tests/test_fuzz_artifacts.py counts them here, by kind and exit). Each
# test's count travels in its report, so the closing line adds up the workers' cases under `-n 2` too.
FUZZ_CASES: collections.Counter[str] = collections.Counter()
_FUZZ_TOTAL: collections.Counter[str] = collections.Counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    before = FUZZ_CASES.copy()
    yield
    ran = FUZZ_CASES - before
    if ran:
        item.user_properties.append(("fuzz_cases", dict(ran)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        for name, value in report.user_properties:
            if name == "fuzz_cases":
                _FUZZ_TOTAL.update(value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FUZZ_TOTAL:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(_FUZZ_TOTAL.items()))
        terminalreporter.write_line(f"fuzz cases: {sum(_FUZZ_TOTAL.values())} ({parts})")
    for line in SUMMARY:
        terminalreporter.write_line(line)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED_DATA
