"""Corrupted artifacts never end in a traceback: every artifact kind (dataset, labeled, embeddings, checkpoint,
report, coords), built small through the real CLI, is damaged (byte flips, truncation at any offset, each dataset
deleted / retyped / reshaped / resized / given NaN or out-of-range values, each attr deleted / retyped /
given another value) and fed to every command that reads that kind. Every run ends with exit 0 or 2, one
line on stderr for a failure (never a traceback, at most 3 lines in all), no output and no temporary file
after a failure, and the input unchanged.

Three layers, cheapest first: every structured damage, exhaustively, through the artifact readers in this
process; hypothesis-drawn damage through each fast command (one subprocess per case); and a sample through
the torch commands (train, embed, evaluate: ~2 s of start-up each, so few). ALCLI_FUZZ_SCALE=N multiplies the
number of drawn cases. The case counts are printed at the end of the run.

Two tiers (README, Two commands): the whole corpus runs in the slow tier (`make test-all`, tests marked slow); the
fast tier (`make test`) runs a seeded sample of it, the same cases every run: a fixed share of each reader's
structured damage and a few drawn cases per command. ALCLI_FUZZ_SEED=N draws another sample (default 0)."""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import FUZZ_CASES, alcli_exe, run_alcli
from corrupt import ATTR_DAMAGE, DATASET_DAMAGE, Mutation, corrupt_copy, layout, mutations
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from alcli.artifacts.output import seal
from alcli.errors import AlcliError

SCALE = max(1, int(os.environ.get("ALCLI_FUZZ_SCALE", "1")))
FAST_EXAMPLES = 4 * SCALE  # per (kind, fast command)
TORCH_EXAMPLES = 6 * SCALE  # in all, over (kind, torch command)
READER_EXAMPLES = 40 * SCALE  # byte flips and truncations per kind, in process
# The fast tier's seeded sample (at least 300 cases in all: the run's closing summary counts them).
SEED = int(os.environ.get("ALCLI_FUZZ_SEED", "0"))
SAMPLE_FAST_EXAMPLES = 1  # per (kind, fast command)
SAMPLE_TORCH_EXAMPLES = 1
SAMPLE_READER_EXAMPLES = 10  # byte flips and truncations per kind
SAMPLE_STRUCTURED = 40  # structured damages per reader, drawn without replacement from all of them
COUNTS = FUZZ_CASES  # per test, reported through the test reports (so `-n 2` counts the workers' cases too)
TORCH = ("--epochs", "1", "--threads", "1", "--device", "cpu")

# What reads each kind: the damaged file is X; the other artifacts are the valid ones. `-q` keeps successful
# runs' stderr short; info prints JSON on stdout. SLOW: commands that import torch or matplotlib (~2 s each).
FAST: dict[str, dict[str, tuple[str, ...]]] = {
    "dataset": {
        "info": ("info", "--json", "X"),
        "split": ("split", "X", "--size", "3", "-o", "OUT"),
        "export": ("export", "l1", "-d", "X", "-o", "OUT.csv"),
        "label": ("label", "X", "answers", "-o", "OUT"),
        "select-labels": ("select", "e", "--labels", "X", "-m", "oracle-uncertainty", "-b", "2", "-o", "OUT"),
    },
    "labeled": {
        "info-stdin": ("info", "--json", "-"),
        "split": ("split", "d", "--size", "3", "--exclude", "X", "-o", "OUT"),
        "select": ("select", "e", "--labeled", "X", "-b", "2", "-o", "OUT"),
        "select-exclude": ("select", "e", "--exclude", "X", "-m", "random", "-b", "2", "-o", "OUT"),
        "export": ("export", "X", "-d", "d", "-o", "OUT.csv"),
        "label": ("label", "d", "answers", "--labeled", "X", "--labeled-out", "OUT2", "-o", "OUT"),
    },
    "embeddings": {
        "info": ("info", "--json", "X"),
        "select": ("select", "X", "--labeled", "l0", "-b", "2", "-o", "OUT"),
        "select-stdin": ("select", "-", "-m", "bald", "-b", "2", "-o", "OUT"),
        "select-badge": ("select", "X", "-m", "badge", "-b", "2", "-o", "OUT"),
        "select-outofcore": ("select", "X", "--memory-limit", "64M", "-b", "2", "-o", "OUT"),
        "export": ("export", "l1", "-d", "d", "--suggest", "X", "-o", "OUT.csv"),
    },
    "checkpoint": {
        "info": ("info", "--json", "X"),
    },
    "report": {
        "info": ("info", "--json", "X"),
        "curve": ("curve", "X", "r", "--csv", "OUT.csv", "--json"),
    },
    "coords": {
        "info": ("info", "--json", "X"),
    },
}
SLOW: dict[str, dict[str, tuple[str, ...]]] = {
    "checkpoint": {
        "embed": ("embed", "d", "--checkpoint", "X", "--device", "cpu", "-o", "OUT"),
        "evaluate": ("evaluate", "X", "d", "--indices", "test", "--device", "cpu", "-o", "OUT"),
    },
    "dataset": {
        "train": ("train", "X", "--labeled", "l0", *TORCH, "-o", "OUT"),
        "embed": ("embed", "X", "--checkpoint", "c", "--device", "cpu", "-o", "OUT"),
        "evaluate": ("evaluate", "c", "X", "--indices", "test", "--device", "cpu", "-o", "OUT"),
    },
    "labeled": {
        "train": ("train", "d", "--labeled", "X", *TORCH, "-o", "OUT"),
        "embed": ("embed", "d", "--checkpoint", "c", "--indices", "X", "--device", "cpu", "-o", "OUT"),
        "evaluate": ("evaluate", "c", "d", "--indices", "X", "--device", "cpu", "-o", "OUT"),
        "map": ("map", "e", "--labeled", "X", "--projection", "pca", "-o", "OUT.png"),
    },
    "embeddings": {
        "map": ("map", "X", "--labeled", "l1", "--projection", "pca", "-o", "OUT.png"),
        "map-coords-out": ("map", "X", "--labeled", "l1", "--projection", "pca", "--coords-out", "OUT",
                           "-o", "OUT.png"),
        "train": ("train", "d", "--labeled", "l0", "--pseudo-labels", "X", "--pseudo-threshold", "0.5", *TORCH,
                  "-o", "OUT"),
    },
    "coords": {
        "map": ("map", "X", "--labeled", "l1", "--compare", "l0", "-o", "OUT.png"),
    },
}
FILES = {"dataset": "d", "labeled": "l1", "embeddings": "e", "checkpoint": "c", "report": "r", "coords": "co"}


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Small valid artifacts of every kind, made by the CLI: a packed 24-image data set (3 classes of 8×8),
    a test split, labelled sets, a 1-epoch checkpoint, embeddings with every optional array, a report."""
    from PIL import Image

    out = tmp_path_factory.mktemp("arts")
    rng = np.random.default_rng(0)
    for cls in "abc":
        (out / "imgs" / cls).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(out / "imgs" / cls / f"{i}.png")
    steps = [
        ("pack", out / "imgs", "-o", out / "d.h5"),
        ("split", out / "d.h5", "--size", "6", "--seed", "0", "-o", out / "test.h5"),
        ("split", out / "d.h5", "--size", "8", "--seed", "1", "--exclude", out / "test.h5", "-o", out / "l0.h5"),
        ("train", out / "d.h5", "--labeled", out / "l0.h5", *TORCH, "-o", out / "c.h5"),
        ("embed", out / "d.h5", "--checkpoint", out / "c.h5", "--mc-samples", "2", "--grad-embedding",
         "--device", "cpu", "-o", out / "e.h5"),
        ("select", out / "e.h5", "--labeled", out / "l0.h5", "-b", "3", "--exclude", out / "test.h5",
         "-o", out / "l1.h5"),
        ("evaluate", out / "c.h5", out / "d.h5", "--indices", out / "test.h5", "--device", "cpu",
         "-o", out / "r.h5"),
        ("map", out / "e.h5", "--labeled", out / "l1.h5", "--projection", "pca", "--coords-out", out / "co.h5",
         "-o", out / "m.png"),
    ]
    for step in steps:
        run_alcli("-q", *step, check=True)
    with open(out / "answers.csv", "w", newline="") as fh:  # the picks of l1, answered with their true class
        writer = csv.writer(fh)
        writer.writerow(["id", "label"])
        writer.writerows([[f"{c}/{i}.png", c] for c in "abc" for i in (0, 5)])
    (out / "kcenter" / "seed0" / "round0").mkdir(parents=True)
    shutil.copyfile(out / "r.h5", out / "kcenter" / "seed0" / "round0" / "report.h5")
    yield out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def _mutations(path: Path) -> st.SearchStrategy[Mutation]:
    return mutations(path)


def _run_case(arts: Path, kind: str, template: tuple[str, ...], mutation: Mutation, folder: Path) -> None:
    """Run one command on a damaged copy of `kind` and check everything the issue asks."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "random" / "seed0" / "round0").mkdir(parents=True)  # the layout `curve` needs
    damaged = folder / "random" / "seed0" / "round0" / "report.h5"
    corrupt_copy(arts / f"{FILES[kind]}.h5", damaged, mutation)
    before = _sha(damaged)
    names = {"X": str(damaged), "OUT": str(folder / "out.h5"), "OUT2": str(folder / "out2.h5"),
             "OUT.csv": str(folder / "out.csv"), "OUT.png": str(folder / "out.png"),
             "answers": str(arts / "answers.csv"), "r": str(arts / "kcenter" / "seed0" / "round0" / "report.h5")}
    args = [names.get(a) or (str(arts / f"{a}.h5") if (arts / f"{a}.h5").exists() else a) for a in template]
    stdin = damaged.read_bytes() if "-" in template else None
    proc = subprocess.run([alcli_exe(), "-q", *args], input=stdin, capture_output=True, timeout=300,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    err = proc.stderr.decode("utf-8", "replace")
    COUNTS[f"{kind} exit {proc.returncode}"] += 1
    what = f"alcli {' '.join(template)} on {kind} damaged by {mutation}: exit {proc.returncode}\n{err}"
    assert proc.returncode in (0, 2), what
    assert "Traceback" not in err, what
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) <= 3, what
    if proc.returncode == 2:
        assert len(lines) == 1 and lines[0].startswith("alcli: error: "), what
        made = [p.name for p in folder.iterdir() if p.is_file() and p.name != "report.h5"]
        assert not made, (made, what)
    assert not [p for p in folder.rglob(".alcli-tmp-*")], what
    assert _sha(damaged) == before, f"input modified: {what}"


FAST_CASES = [(kind, name) for kind, commands in FAST.items() for name in commands]


def _fast_command(arts: Path, kind: str, name: str, data: st.DataObject) -> None:
    mutation = data.draw(_mutations(arts / f"{FILES[kind]}.h5"), label="mutation")
    _run_case(arts, kind, FAST[kind][name], mutation, arts / "case" / f"{kind}-{name}")


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "name"), FAST_CASES, ids=[f"{k}-{n}" for k, n in FAST_CASES])
@settings(max_examples=FAST_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_artifact_fast_commands(arts: Path, kind: str, name: str, data: st.DataObject) -> None:
    _fast_command(arts, kind, name, data)


@pytest.mark.parametrize(("kind", "name"), FAST_CASES, ids=[f"{k}-{n}" for k, n in FAST_CASES])
@seed(SEED)
@settings(max_examples=SAMPLE_FAST_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_artifact_fast_commands_sample(arts: Path, kind: str, name: str, data: st.DataObject) -> None:
    _fast_command(arts, kind, name, data)


SLOW_CASES = [(kind, name) for kind, commands in SLOW.items() for name in commands]


def _torch_command(arts: Path, data: st.DataObject) -> None:
    kind, name = data.draw(st.one_of(st.sampled_from([c for c in SLOW_CASES if c[0] == "checkpoint"]),
                                     st.sampled_from(SLOW_CASES)), label="command")
    mutation = data.draw(_mutations(arts / f"{FILES[kind]}.h5"), label="mutation")
    _run_case(arts, kind, SLOW[kind][name], mutation, arts / "case" / "torch")


@pytest.mark.slow
@settings(max_examples=TORCH_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_artifact_torch_commands(arts: Path, data: st.DataObject) -> None:
    """A sample: half of the cases a damaged checkpoint (only torch commands read one beyond `info`)."""
    _torch_command(arts, data)


@seed(SEED)
@settings(max_examples=SAMPLE_TORCH_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_artifact_torch_commands_sample(arts: Path, data: st.DataObject) -> None:
    _torch_command(arts, data)


def _readers() -> dict[str, Callable[[str], object]]:
    from alcli.artifacts import read_dataset, read_embeddings, read_labeled, read_report
    from alcli.artifacts.coords import read_coords

    def checkpoint(path: str) -> object:
        from alcli.learn import training

        return training.load_model(path, "cpu")

    def out_of_core(path: str) -> object:
        from alcli.scale import outofcore

        return np.asarray(outofcore.read_embeddings(path, memory_limit=1 << 20).features).sum()

    return {"dataset": read_dataset, "labeled": read_labeled, "embeddings": read_embeddings,
            "embeddings-outofcore": out_of_core, "checkpoint": checkpoint, "report": read_report,
            "coords": read_coords}


def _read_damaged(arts: Path, reader: str, mutation: Mutation, tmp: Path) -> None:
    kind = reader.split("-")[0]
    damaged = tmp / f"{kind}.h5"
    corrupt_copy(arts / f"{FILES[kind]}.h5", damaged, mutation)
    COUNTS[f"{kind} (in process)"] += 1
    try:
        _readers()[reader](str(damaged))
    except AlcliError as exc:
        assert "\n" not in str(exc)


READERS = ["dataset", "labeled", "embeddings", "embeddings-outofcore", "checkpoint", "report", "coords"]


def _structured(arts: Path, reader: str) -> list[Mutation]:
    """Each dataset and each attr, every kind of damage."""
    datasets, attrs = layout(arts / f"{FILES[reader.split('-')[0]]}.h5")
    return ([("dataset", name, how) for name in datasets for how in DATASET_DAMAGE]
            + [("attr", name, how) for name in attrs for how in ATTR_DAMAGE])


@pytest.mark.slow
@pytest.mark.parametrize("reader", READERS)
def test_every_structured_damage_through_the_reader(arts: Path, reader: str, tmp_path: Path) -> None:
    """Each dataset and each attr, every kind of damage: the reader returns or raises AlcliError only."""
    for mutation in _structured(arts, reader):
        _read_damaged(arts, reader, mutation, tmp_path)


@pytest.mark.parametrize("reader", READERS)
def test_structured_damage_sample_through_the_reader(arts: Path, reader: str, tmp_path: Path) -> None:
    """The fast tier's share of the test above: SAMPLE_STRUCTURED damages per reader, seeded."""
    every = _structured(arts, reader)
    rng = np.random.default_rng([SEED, READERS.index(reader)])
    for i in sorted(rng.choice(len(every), size=min(SAMPLE_STRUCTURED, len(every)), replace=False)):
        _read_damaged(arts, reader, every[i], tmp_path)


def _flip_or_truncate(arts: Path, reader: str, data: st.DataObject) -> None:
    path = arts / f"{FILES[reader.split('-')[0]]}.h5"
    size = path.stat().st_size
    mutation = data.draw(st.one_of(
        st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)),
                                            min_size=1, max_size=4)),
        st.tuples(st.just("truncate"), st.integers(0, size - 1))), label="mutation")
    folder = arts / "case" / "reader"
    folder.mkdir(parents=True, exist_ok=True)
    _read_damaged(arts, reader, mutation, folder)


@pytest.mark.slow
@pytest.mark.parametrize("reader", READERS)
@settings(max_examples=READER_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_flipped_and_truncated_bytes_through_the_reader(arts: Path, reader: str, data: st.DataObject) -> None:
    _flip_or_truncate(arts, reader, data)


@pytest.mark.parametrize("reader", READERS)
@seed(SEED)
@settings(max_examples=SAMPLE_READER_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_flipped_and_truncated_bytes_sample_through_the_reader(arts: Path, reader: str,
                                                               data: st.DataObject) -> None:
    _flip_or_truncate(arts, reader, data)


@pytest.mark.parametrize("memory", [None, "64M"])
def test_features_too_large_for_float32_distances(tmp_path: Path, memory: str | None) -> None:
    """Found by the fuzz: a finite 3e38 in `features` made kcenter print overflow warnings and pick from
    inf/NaN distances, exit 0. Now bad input, in memory and out of core."""
    from conftest import assert_one_line_error

    from alcli.artifacts import Embeddings, write_embeddings

    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    x[7, 2] = 3e38
    write_embeddings(str(tmp_path / "e.h5"), Embeddings(x, np.arange(50), 50))
    extra = ("--memory-limit", memory) if memory else ()
    proc = run_alcli("select", tmp_path / "e.h5", "-b", "3", *extra, "-o", tmp_path / "l.h5")
    assert_one_line_error(proc, "e.h5", "overflow float32")
    assert not (tmp_path / "l.h5").exists()


def test_names_that_are_not_utf8(arts: Path, tmp_path: Path) -> None:
    """Found by a busy soak: byte 0 flipped (the seal's magic gone, so the file read as unsealed) and a byte of
    an attr name flipped made `alcli info --json` end in a TypeError (h5py hands such names back as bytes).
    Names that are not UTF-8 are shown escaped by `info` and named in one line by the readers (the files are
    edited on purpose here, then sealed again so the readers get past the seal)."""
    report, ckpt = tmp_path / "r.h5", tmp_path / "c.h5"
    shutil.copyfile(arts / "r.h5", report)
    shutil.copyfile(arts / "c.h5", ckpt)
    with h5py.File(report, "r+") as fh:
        fh.attrs[b"odd\xffname"] = 1
        fh[b"odd\xfeset"] = np.arange(3)
    with h5py.File(ckpt, "r+") as fh:
        fh["state"][b"extra\xff"] = np.zeros(2, np.float32)
        fh["state"]["extra"] = np.zeros(2, np.float32)  # bytes and text names side by side
    seal(str(report))
    seal(str(ckpt))
    shown = run_alcli("info", "--json", report)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["attrs"]["odd\\xffname"] == 1 and "odd\\xfeset" in info["datasets"]
    assert run_alcli("info", report).returncode == 0
    before = _sha(ckpt)
    proc = run_alcli("evaluate", ckpt, arts / "d.h5", "--indices", arts / "test.h5", "--device", "cpu",
                     "-o", tmp_path / "out.h5")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "unexpected tensor" in proc.stderr and not (tmp_path / "out.h5").exists() and _sha(ckpt) == before


@pytest.mark.parametrize(("offsets", "code"), [([0], 2), ([3, 19], 2), ([20], 2), ([84], 0), ([100, 511], 0)],
                         ids=str)
def test_a_damaged_seal_is_not_mistaken_for_no_seal(arts: Path, tmp_path: Path, offsets: list[int],
                                                    code: int) -> None:
    """A flipped byte in the seal's magic or digits is damage, not a file from another tool: one line, exit 2,
    before HDF5 reads the file (a flip in the magic used to make the file read as unsealed). A flip in the
    newline or the padding leaves an intact magic and digits, which still vouch for the content: read. A
    plain HDF5 file with a user block of its own is still read."""
    damaged = tmp_path / "r.h5"
    corrupt_copy(arts / "r.h5", damaged, ("flip", [(o, 0x20) for o in offsets]))
    proc = run_alcli("info", damaged)
    assert proc.returncode == code, proc.stderr
    if code:
        assert len(proc.stderr.strip().splitlines()) == 1 and "damaged" in proc.stderr, proc.stderr
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w", userblock_size=512) as fh:
        fh["features"] = np.zeros((3, 2), np.float32)
    with open(plain, "r+b") as fh:
        fh.write(b"another tool's own user block".ljust(512, b"x"))
    assert run_alcli("info", plain).returncode == 0


@pytest.mark.parametrize("value", [2**31 - 1, -1, 2**40])
def test_a_round_number_out_of_range_is_one_line(arts: Path, tmp_path: Path, value: int) -> None:
    """Found by a busy soak: a labelled set whose 'round' held 2^31 - 1 made `select` overflow int32 computing
    the next round (exit 1); an int64 2^40 was silently wrapped. Now the reader names it."""
    lab = tmp_path / "l1.h5"
    shutil.copyfile(arts / "l1.h5", lab)
    with h5py.File(lab, "r+") as fh:
        rounds = fh["round"][:].astype(np.int64)
        rounds[0] = value
        del fh["round"]
        fh["round"] = rounds
    seal(str(lab))
    proc = run_alcli("select", arts / "e.h5", "--labeled", lab, "-b", "2", "-o", tmp_path / "out.h5")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "'round' holds" in proc.stderr and not (tmp_path / "out.h5").exists()
