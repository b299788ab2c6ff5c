"""Nothing lost: an output naming an input is refused by every command; Ctrl-C at any time (while modules
import, inside a long FAISS call) ends with one line and exit 130; a write failure (file size limit, full
device) names the output and leaves no temporary file and any existing output intact; two processes
writing one output path leave one complete, valid file. Through the installed CLI, with real signals."""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import pytest
from conftest import alcli_exe, assert_one_line_error, foreground, run_alcli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alcli.artifacts import Embeddings, io, read_labeled, write_embeddings
from alcli.artifacts.output import SEAL_MAGIC, content_sha256

INTERRUPTED = "alcli: error: interrupted\n"
ENDINGS = {signal.SIGINT: (130, INTERRUPTED), signal.SIGTERM: (143, "alcli: error: terminated\n")}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small inputs of every kind: a packed data set of 12 8×8 images, a split, embeddings; files that
    are only ever refused (checkpoint, report, answers) need not be valid."""
    from PIL import Image

    out = tmp_path_factory.mktemp("rel")
    rng = np.random.default_rng(0)
    for cls in "ab":
        (out / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(out / "imgs" / cls / f"{i}.png")
    run_alcli("pack", out / "imgs", "-o", out / "d.h5", check=True)
    run_alcli("split", out / "d.h5", "--size", "4", "--seed", "0", "-o", out / "test.h5", check=True)
    run_alcli("split", out / "d.h5", "--size", "4", "--seed", "1", "--exclude", out / "test.h5", "-o", out / "l0.h5",
              check=True)
    x = rng.normal(size=(12, 4)).astype(np.float32)
    write_embeddings(str(out / "e.h5"), Embeddings(x, np.arange(12), 12))
    for name, text in (("c.h5", "a checkpoint"), ("r.h5", "a report"), ("answers.csv", "id,label\na/0.png,a\n")):
        (out / name).write_text(text)
    (out / "mc" / "seed0" / "round0").mkdir(parents=True)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith((".alcli-tmp-", "alcli-stdin-"))]


# ------------------------------------------------------------------------------------ output onto input

# (command line with T for the output, the inputs T may name). Every command with an output is here.
ONTO_INPUT = {
    "pack": (["pack", "imgs", "-o", "T"], ["imgs"]),
    "split": (["split", "d.h5", "--size", "2", "--exclude", "test.h5", "-o", "T"], ["d.h5", "test.h5"]),
    "train": (["train", "d.h5", "--labeled", "l0.h5", "--exclude", "test.h5", "-o", "T"],
              ["d.h5", "l0.h5", "test.h5"]),
    "embed": (["embed", "d.h5", "--checkpoint", "c.h5", "--indices", "l0.h5", "-o", "T"], ["d.h5", "c.h5", "l0.h5"]),
    "embed-positional": (["embed", "d.h5", "T", "--checkpoint", "c.h5"], ["c.h5", "d.h5"]),
    "select": (["select", "e.h5", "--labeled", "l0.h5", "--exclude", "test.h5", "-b", "2", "-o", "T"],
               ["e.h5", "l0.h5", "test.h5"]),
    "evaluate": (["evaluate", "c.h5", "d.h5", "--indices", "test.h5", "-o", "T"], ["c.h5", "d.h5", "test.h5"]),
    "curve-csv": (["curve", "r.h5", "--csv", "T"], ["r.h5"]),
    "curve-plot": (["curve", "r.h5", "--plot", "T"], ["r.h5"]),
    "export": (["export", "l0.h5", "-d", "d.h5", "--suggest", "e.h5", "-o", "T"], ["l0.h5", "d.h5", "e.h5"]),
    "export-copy-to": (["export", "l0.h5", "-d", "d.h5", "--images-root", "imgs", "-o", "list.csv", "--copy-to",
                        "T"], ["d.h5", "imgs"]),
    "export-config": (["export", "l0.h5", "-d", "d.h5", "-o", "tasks.json", "--config-out", "T"],
                      ["d.h5", "l0.h5"]),
    "label": (["label", "d.h5", "answers.csv", "-o", "T"], ["d.h5", "answers.csv"]),
    "label-labeled-out": (["label", "d.h5", "answers.csv", "--labeled", "l0.h5", "--labeled-out", "T",
                           "-o", "new.h5"], ["l0.h5", "answers.csv", "d.h5"]),
    "label-skipped-out": (["label", "d.h5", "answers.csv", "--skipped-out", "T", "-o", "new.h5"],
                          ["answers.csv", "d.h5"]),
    "map": (["map", "e.h5", "--labeled", "l0.h5", "--compare", "test.h5", "-o", "T"], ["e.h5", "l0.h5", "test.h5"]),
    "map-coords-out": (["map", "e.h5", "--labeled", "l0.h5", "-o", "map.png", "--coords-out", "T"],
                       ["l0.h5", "e.h5"]),
}
WAYS = ("same path", "symlink", "hard link")


def test_every_output_option_is_listed() -> None:
    from alcli.cli import cli
    from alcli.options import PathParam

    def key(line: list[str]) -> tuple[str, str]:
        flag = line[line.index("T") - 1]
        return line[0], flag if flag.startswith("-") else "ARG"

    outputs = {(name, min(p.opts, key=len) if isinstance(p, click.Option) else "ARG")
               for name, cmd in cli.commands.items() for p in cmd.params
               if isinstance(p.type, PathParam) and p.type.role == "output"}
    missing = outputs - {key(line) for line, _ in ONTO_INPUT.values()}
    assert not missing, f"add these outputs to ONTO_INPUT: {sorted(missing)}"


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case", sorted(ONTO_INPUT))
def test_output_onto_an_input_is_refused(work: Path, case: str, way: str) -> None:
    line, inputs = ONTO_INPUT[case]
    victim = work / inputs[WAYS.index(way) % len(inputs)]
    if way == "same path":
        target = str(work / "mc" / ".." / victim.name)  # spelled another way
    else:
        link = work / f"link-{case}-{way.replace(' ', '')}"
        link.unlink(missing_ok=True)
        if way == "symlink":
            link.symlink_to(victim)
        elif victim.is_dir():
            pytest.skip("no hard links to folders")
        else:
            os.link(victim, link)
        target = str(link)
    before = {p: _sha(p) for p in work.iterdir()}
    proc = run_alcli(*[target if a == "T" else (str(work / a) if (work / a).exists() else a) for a in line],
                     cwd=work)
    assert_one_line_error(proc, "names the input", victim.name)
    after = {p: _sha(p) for p in work.iterdir()}
    assert after == before, "an input or the folder changed"


# ---------------------------------------------------------------------------------------------- Ctrl-C


def _start(args: list[str], tmp: Path, **kw: object) -> tuple[subprocess.Popen, Path]:
    started = tmp / f"started-{time.monotonic_ns()}"
    env = dict(os.environ, ALCLI_STARTED_FILE=str(started), TMPDIR=str(tmp))
    proc = subprocess.Popen([alcli_exe(), *args], env=env, stdin=kw.pop("stdin", subprocess.DEVNULL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=kw.pop("preexec_fn", foreground), **kw)  # type: ignore[call-overload]
    return proc, started


def _wait_for(started: Path, phase: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until alcli has written PHASE to ALCLI_STARTED_FILE (it writes `importing`, then `running`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = started.read_text() if started.exists() else ""
        if text.strip().endswith(phase) or (phase == "importing" and text.strip().endswith("running")):
            return
        assert proc.poll() is None, f"alcli exited ({proc.returncode}) before {phase}: {proc.stderr.read()!r}"
        time.sleep(0.002)
    raise AssertionError(f"alcli never reached {phase}")


def _interrupt(proc: subprocess.Popen, signum: int = signal.SIGINT) -> tuple[str, float]:
    t0 = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    return err.decode(), time.monotonic() - t0


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Embeddings on which kcenter, b=20,000 takes many seconds (so a Ctrl-C always lands before the end)."""
    path = tmp_path_factory.mktemp("big") / "big.h5"
    x = np.random.default_rng(1).normal(size=(30000, 32)).astype(np.float32)
    write_embeddings(str(path), Embeddings(x, np.arange(30000), 30000))
    return path


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(offset=st.floats(0.0, 0.4), signum=st.sampled_from([signal.SIGINT, signal.SIGTERM]))
def test_early_ctrl_c_is_one_line_and_130(big: Path, tmp_path_factory: pytest.TempPathFactory, offset: float,
                                          signum: int) -> None:
    """SIGINT (or SIGTERM: 143, `terminated`) at a random moment after alcli installed its handler, mostly
    while modules import."""
    tmp = tmp_path_factory.mktemp("early")
    out = tmp / "out.h5"
    proc, started = _start(["select", str(big), "-b", "20000", "-o", str(out)], tmp)
    _wait_for(started, "importing", proc)
    time.sleep(offset)
    err, _ = _interrupt(proc, signum)
    assert (proc.returncode, err) == ENDINGS[signum], (offset, proc.returncode, err)
    assert not out.exists() and not _leftovers(tmp)


# Ctrl-C landing in click's own frames (parsing, the group callback) rather than in a command's body or a
# native call: pure-Python work on the main thread. The script makes the group callback send the SIGINT to
# its own process, so the KeyboardInterrupt is raised there every time (the soak found it once by chance).
_CTRL_C_IN_CLICK = """
import os, signal, sys
from alcli import console, entry
real = console.set_quiet
def set_quiet(quiet):
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10 ** 7):
        pass
    real(quiet)
console.set_quiet = set_quiet
sys.argv = ["alcli", *sys.argv[1:]]
entry.main()
"""


def test_ctrl_c_in_clicks_own_frames_is_one_line_and_130(big: Path, tmp_path: Path) -> None:
    """click's Command.main writes a blank line to stderr when it catches KeyboardInterrupt (even with
    standalone_mode=False): alcli parses and invokes without it, so stderr is the one line."""
    import sys

    out = tmp_path / "out.h5"
    proc = subprocess.run([sys.executable, "-c", _CTRL_C_IN_CLICK, "select", str(big), "-b", "5", "-o", str(out)],
                          capture_output=True, text=True, timeout=120, preexec_fn=foreground)
    assert (proc.returncode, proc.stderr) == (130, INTERRUPTED)
    assert not out.exists()


def test_command_line_without_a_command() -> None:
    """alcli parses without click's standalone main: the group's own answers still hold."""
    bare = run_alcli()
    assert bare.returncode == 2 and bare.stdout == b"" and bare.stderr.startswith("Usage: alcli ")
    assert "Commands:" in bare.stderr
    version = run_alcli("--version", check=True)
    assert version.stdout.decode().startswith("alcli, version ") and version.stderr == ""
    assert run_alcli("select", "--help", check=True).stdout.decode().startswith("Usage: alcli select ")
    assert_one_line_error(run_alcli("nope"), "No such command")


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Embeddings on which FAISS k-means with k=1,000 runs for seconds even on an idle box (FAISS 1.15 stops
    k-means early once the objective settles, so the iteration count alone cannot make it long)."""
    path = tmp_path_factory.mktemp("clusters") / "x.h5"
    x = np.random.default_rng(1).normal(size=(100000, 64)).astype(np.float32)
    write_embeddings(str(path), Embeddings(x, np.arange(100000), 100000))
    return path


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# slow tier: ~9 s each; the fast tier keeps Ctrl-C inside a native call through the CBC test below
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_inside_faiss_kmeans_is_prompt(clusters: Path, tmp_path: Path, signum: int) -> None:
    """Ctrl-C while FAISS k-means runs (native code holding the main thread, features spooled from stdin):
    exit 130 within a few seconds, one line, the spooled copy of stdin removed, no output."""
    out = tmp_path / "out.h5"
    with open(clusters, "rb") as stdin:
        proc, started = _start(["select", "-", "-m", "kmedian", "-b", "1000", "--kmeans-iters", "100000",
                                "-o", str(out)], tmp_path, stdin=stdin)
        _wait_for(started, "running", proc)
        base = _threads(proc.pid)
        deadline = time.monotonic() + 120
        # FAISS's k-means starts once k-means++ seeding is done (~3.3 CPU s here, whatever the load): it shows
        # as new OpenMP threads, or, where OpenMP runs one thread, as CPU time past the seeding.
        while (_threads(proc.pid) <= base and _cpu_seconds(proc.pid) < 5.0 and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert proc.poll() is None
        time.sleep(0.2)
        err, seconds = _interrupt(proc, signum)
    assert (proc.returncode, err) == ENDINGS[signum]
    assert seconds < 6, f"took {seconds:.1f} s to stop"
    assert not out.exists() and not _leftovers(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_inside_a_cbc_solve_is_prompt(tmp_path: Path, signum: int) -> None:
    """CBC installs its own SIGINT handler for each solve (and swallowed Ctrl-C: kcenter-robust ran on to the
    end, exit 0); alcli.signals.keep_sigint puts alcli's back, so the watchdog ends the process."""
    emb = tmp_path / "e.h5"
    x = np.random.default_rng(0).normal(size=(3000, 8)).astype(np.float32)
    write_embeddings(str(emb), Embeddings(x, np.arange(3000), 3000))
    out = tmp_path / "out.h5"
    proc, started = _start(["select", str(emb), "-m", "kcenter-robust", "-b", "30", "--exact", "-o", str(out)],
                           tmp_path)
    _wait_for(started, "running", proc)
    deadline = time.monotonic() + 120
    while "alcli-sigint" not in _thread_names(proc.pid) and time.monotonic() < deadline:  # a CBC solve runs
        time.sleep(0.001)
    assert proc.poll() is None
    err, seconds = _interrupt(proc, signum)
    assert (proc.returncode, err) == ENDINGS[signum]
    assert seconds < 6, f"took {seconds:.1f} s to stop"
    assert not out.exists() and not _leftovers(tmp_path)


def _thread_names(pid: int) -> set[str]:
    names = set()
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else ():
        with contextlib.suppress(OSError):
            names.add(Path(f"/proc/{pid}/task/{task}/comm").read_text().strip())
    return names


# --------------------------------------------------------------------------------------- write failures


def _limit(size: int) -> Callable[[], None]:
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


WRITERS = {
    "split": (["split", "d.h5", "--size", "4", "-o", "OUT"], 2048),
    "select": (["select", "e.h5", "-b", "3", "-o", "OUT"], 2048),
    "pack": (["pack", "imgs", "-o", "OUT"], 4096),
    "export": (["export", "l0.h5", "-d", "d.h5", "-o", "OUT.csv"], 40),
    "split-stdout": (["split", "d.h5", "--size", "4", "-o", "-"], 2048),
}


@pytest.mark.parametrize("case", sorted(WRITERS))
def test_file_size_limit_is_one_line_and_leaves_nothing(work: Path, tmp_path: Path, case: str) -> None:
    line, size = WRITERS[case]
    out = tmp_path / ("out.csv" if "OUT.csv" in line else "out.h5")
    out.write_bytes(b"an existing output")
    args = [str(out) if a.startswith("OUT") else (str(work / a) if (work / a).exists() else a) for a in line]
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.run([alcli_exe(), *args], capture_output=True, env=env, stdin=subprocess.DEVNULL,
                          preexec_fn=_limit(size), timeout=300)
    proc.stderr = proc.stderr.decode()
    assert_one_line_error(proc, "<stdout>" if "-" in line else str(out), "File too large")
    assert out.read_bytes() == b"an existing output"
    assert proc.stdout == b""
    assert not _leftovers(tmp_path)


def test_checkpoint_write_failure(work: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    out.write_bytes(b"an existing output")
    proc = subprocess.run([alcli_exe(), "train", str(work / "d.h5"), "--labeled", str(work / "l0.h5"), "--epochs", "1",
                           "--threads", "1", "--device", "cpu", "-o", str(out)], capture_output=True,
                          stdin=subprocess.DEVNULL, preexec_fn=_limit(8192), timeout=300)
    proc.stderr = proc.stderr.decode()
    assert_one_line_error(proc, str(out), "File too large")
    assert out.read_bytes() == b"an existing output" and not _leftovers(tmp_path)


def test_full_device_on_stdout(work: Path, tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([alcli_exe(), "split", str(work / "d.h5"), "--size", "4", "-o", "-"], stdout=full,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, TMPDIR=str(tmp_path)), timeout=300)
    proc.stderr = proc.stderr.decode()
    assert_one_line_error(proc, "<stdout>", "No space left on device")
    assert not _leftovers(tmp_path)


# ----------------------------------------------------------------------------------- concurrent writers


def test_two_writers_of_one_path_leave_one_valid_file(big: Path, tmp_path: Path) -> None:
    """Two `select`s with different seeds, same -o, started together: the file is one of the two."""
    expected = {}
    for seed in (1, 2):
        run_alcli("select", big, "-m", "random", "-b", "5000", "--seed", seed, "-o", tmp_path / f"s{seed}.h5",
                  check=True)
        expected[seed] = read_labeled(str(tmp_path / f"s{seed}.h5")).indices.tolist()
    assert expected[1] != expected[2]
    out = tmp_path / "out.h5"
    for _ in range(3):
        procs = [subprocess.Popen([alcli_exe(), "-q", "select", str(big), "-m", "random", "-b", "5000", "--seed",
                                   str(seed), "-o", str(out)], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for seed in (1, 2)]
        assert [p.wait(timeout=300) for p in procs] == [0, 0], [p.stderr.read() for p in procs]  # type: ignore[union-attr]
        assert read_labeled(str(out)).indices.tolist() in expected.values()
        assert not _leftovers(tmp_path)


def test_ctrl_c_ignored_by_the_parent_stays_ignored(work: Path, tmp_path: Path) -> None:
    """A shell starts background jobs with SIGINT ignored (Ctrl-C is for the foreground job): alcli keeps it so."""
    out = tmp_path / "l1.h5"
    proc, started = _start(["select", str(work / "e.h5"), "-b", "3", "-o", str(out)], tmp_path,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    _wait_for(started, "importing", proc)
    proc.send_signal(signal.SIGINT)
    _wait_for(started, "running", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert read_labeled(str(out)).indices.size == 3


def test_the_seal_catches_damage_and_survives_pipes(work: Path, tmp_path: Path) -> None:
    """Every artifact carries the sha256 of its content in its HDF5 user block: a flipped byte or a truncated
    copy is one line naming the file before HDF5 reads it; a file through `-o -` and `info -` keeps it."""
    src = work / "l0.h5"
    piped = run_alcli("split", work / "d.h5", "--size", "3", "--seed", "1", "-o", "-", check=True).stdout
    assert piped.startswith(b"alcli-seal 1 sha256 ")
    assert run_alcli("info", "-", input=piped).returncode == 0
    data = bytearray(src.read_bytes())
    assert data.startswith(b"alcli-seal 1 sha256 ")
    for name, damaged in [("flip.h5", data[:2000] + bytes([data[2000] ^ 4]) + data[2001:]),
                          ("short.h5", data[: len(data) - 100])]:
        (tmp_path / name).write_bytes(bytes(damaged))
        proc = run_alcli("info", tmp_path / name)
        assert_one_line_error(proc, name, "damaged")
    unsealed = data[:0] + b"\0" * 512 + data[512:]  # no seal at all: HDF5 reads it as any other file
    (tmp_path / "plain.h5").write_bytes(bytes(unsealed))
    assert run_alcli("info", tmp_path / "plain.h5").returncode == 0


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from([0, 1, 511, 512, 513, 4096, (1 << 20) - 1, 1 << 20, (1 << 20) + 511, (1 << 20) + 513]),
       seed=st.integers(0, 2**16))
def test_one_read_gives_the_file_and_content_digests(tmp_path_factory: pytest.TempPathFactory, size: int,
                                                     seed: int) -> None:
    """Opening an input reads it once for both digests (the file's, and the sealed content's after the user
    block): they equal hashing the bytes directly, at every size around the block and the read size."""
    data = np.random.default_rng(seed).bytes(size)
    path = tmp_path_factory.mktemp("digest") / "f.bin"
    path.write_bytes(data)
    assert io._digests(str(path)) == (hashlib.sha256(data).hexdigest(), "")  # no seal: nothing to compare
    data = (SEAL_MAGIC + data)[: max(size, len(SEAL_MAGIC))]
    path.write_bytes(data)
    assert io._digests(str(path)) == (hashlib.sha256(data).hexdigest(), hashlib.sha256(data[512:]).hexdigest())
    assert io._digests(str(path))[1] == content_sha256(str(path))
