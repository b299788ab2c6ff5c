"""`alcli select` and `alcli info` through the installed CLI: pipes, outputs, and every bad input."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import alcli_exe, assert_one_line_error, foreground, run_alcli, shell
from oracles import kcenter_greedy_bruteforce

from alcli.artifacts import Embeddings, LabeledSet, read_labeled, write_embeddings, write_labeled


def _features(n: int = 120, d: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.fixture
def emb(tmp_path: Path) -> Path:
    x = _features()
    path = tmp_path / "emb.h5"
    write_embeddings(str(path), Embeddings(x, np.arange(len(x)), len(x)))
    return path


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    path = tmp_path / "l0.h5"
    write_labeled(str(path), LabeledSet(np.array([3, 50, 99]), np.zeros(3, np.int32), 120))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".alcli-tmp")]


def test_select_matches_bruteforce_and_records_provenance(tmp_path: Path, emb: Path, lab: Path) -> None:
    out = tmp_path / "l1.h5"
    before = (_sha(emb), _sha(lab))
    proc = run_alcli("select", emb, "--labeled", lab, "--budget", "7", "-o", out, "--json", check=True)
    summary = json.loads(proc.stdout)
    rest = sorted(set(range(120)) - {3, 50, 99})
    picks, r_before, r_after = kcenter_greedy_bruteforce(_features(), [3, 50, 99], rest, 7)
    got = read_labeled(str(out))
    assert got.last_picks.tolist() == picks
    assert got.indices.tolist() == sorted([3, 50, 99, *picks])
    assert got.rounds[np.isin(got.indices, picks)].tolist() == [1] * 7
    assert summary["radius_before"] == pytest.approx(r_before) and summary["radius_after"] == pytest.approx(r_after)
    assert got.attrs["method"] == "kcenter" and got.attrs["budget"] == 7
    with h5py.File(out) as f:
        parents = json.loads(f.attrs["parents"])
        assert f.attrs["format"] == "alcli.labeled" and f.attrs["version"] == 1
    assert parents == {"embeddings": before[0], "labeled": before[1]}
    assert (_sha(emb), _sha(lab)) == before  # inputs never modified
    assert "kcenter: picked 7" in proc.stderr


def test_real_pipeline_cat_select_info(tmp_path: Path, emb: Path, lab: Path) -> None:
    proc = shell(f"cat {emb} | alcli select - --labeled {lab} -b 5 | alcli info - --json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["kind"] == "labeled" and info["datasets"]["indices"]["shape"] == [8]


def test_empty_labelled_set_starts_farthest_from_mean(tmp_path: Path, emb: Path) -> None:
    proc = run_alcli("select", emb, "-b", "4", "-o", tmp_path / "o.h5", "--json", check=True)
    x = _features().astype(float)
    first = int(np.argmax(((x - x.mean(0)) ** 2).sum(1)))
    assert read_labeled(str(tmp_path / "o.h5")).last_picks[0] == first
    assert json.loads(proc.stdout)["radius_before"] is None


def test_exclude_is_never_picked_nor_covered(tmp_path: Path, emb: Path, lab: Path) -> None:
    test = tmp_path / "test.h5"
    excluded = np.setdiff1d(np.arange(60, 120), [99])  # 99 is labelled
    write_labeled(str(test), LabeledSet(excluded, np.zeros(59, np.int32), 120))
    run_alcli("select", emb, "--labeled", lab, "-b", "58", "--exclude", test, "-o", tmp_path / "o.h5", check=True)
    got = read_labeled(str(tmp_path / "o.h5"))
    assert not np.isin(got.last_picks, excluded).any() and got.last_picks.size == 58
    proc = run_alcli("select", emb, "--labeled", lab, "-b", "59", "--exclude", test, "-o", tmp_path / "p.h5")
    assert_one_line_error(proc, "--budget", "58 unlabelled")
    both = tmp_path / "both.h5"
    write_labeled(str(both), LabeledSet(np.array([99]), np.zeros(1, np.int32), 120))
    proc = run_alcli("select", emb, "--labeled", lab, "-b", "1", "--exclude", both, "-o", tmp_path / "q.h5")
    assert_one_line_error(proc, "--exclude", "99")


def test_random_is_seeded(tmp_path: Path, emb: Path, lab: Path) -> None:
    outs = []
    for i, seed in enumerate([1, 1, 2]):
        path = tmp_path / f"r{i}.h5"
        run_alcli("select", emb, "--labeled", lab, "-b", "10", "-m", "random", "--seed", seed, "-o", path, check=True)
        outs.append(read_labeled(str(path)).last_picks.tolist())
    assert outs[0] == outs[1] != outs[2]


def test_npy_and_plain_features_are_accepted(tmp_path: Path) -> None:
    x = _features(30, 3)
    np.save(tmp_path / "f.npy", x)
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["features"] = x
    a = run_alcli("select", tmp_path / "f.npy", "-b", "5", "-o", tmp_path / "a.h5", check=True)
    b = run_alcli("select", tmp_path / "plain.h5", "-b", "5", "-o", tmp_path / "b.h5", check=True)
    assert a.returncode == b.returncode == 0
    a_rows = read_labeled(str(tmp_path / "a.h5")).indices
    assert a_rows.tolist() == read_labeled(str(tmp_path / "b.h5")).indices.tolist()


def test_info_table_and_json(tmp_path: Path, emb: Path) -> None:
    proc = run_alcli("info", emb, check=True)
    assert "embeddings" in proc.stderr and "features" in proc.stderr and proc.stdout == b""
    info = json.loads(run_alcli("info", emb, "--json", check=True).stdout)
    assert info["kind"] == "embeddings" and info["datasets"]["features"] == {"shape": [120, 5], "dtype": "float32"}


def test_refuses_to_write_hdf5_to_a_terminal(emb: Path) -> None:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([alcli_exe(), "select", str(emb), "-b", "2"], stdout=follower,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2 and b"terminal" in proc.stderr


# ----------------------------------------------------------------------------------------- bad inputs


def _write_embeddings_raw(path: Path, features: np.ndarray, fmt: str = "alcli.embeddings", version: int = 1) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["format"] = fmt
        f.attrs["version"] = version
        f["features"] = features


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], bytes | None, tuple[str, ...]]]:
    good = tmp / "good.h5"
    write_embeddings(str(good), Embeddings(_features(20, 3), np.arange(20), 20))
    (tmp / "text.h5").write_text("hello, not hdf5\n")
    data = good.read_bytes()
    (tmp / "trunc.h5").write_bytes(data[: len(data) // 2])
    _write_embeddings_raw(tmp / "fmt.h5", _features(20, 3), fmt="alcli.dataset")
    _write_embeddings_raw(tmp / "ver.h5", _features(20, 3), version=99)
    nan = _features(20, 3)
    nan[4, 1] = np.nan
    _write_embeddings_raw(tmp / "nan.h5", nan)
    inf = _features(20, 3)
    inf[7, 0] = np.inf
    _write_embeddings_raw(tmp / "inf.h5", inf)
    _write_embeddings_raw(tmp / "oned.h5", np.arange(20, dtype=np.float32))
    with h5py.File(tmp / "range.h5", "w") as f:
        f.attrs.update({"format": "alcli.labeled", "version": 1, "pool_size": 20})
        f["indices"], f["round"] = np.array([1, 25]), np.zeros(2, np.int32)
    with h5py.File(tmp / "dup.h5", "w") as f:
        f.attrs.update({"format": "alcli.labeled", "version": 1, "pool_size": 20})
        f["indices"], f["round"] = np.array([1, 1, 4]), np.zeros(3, np.int32)
    g = str(good)
    return {
        "missing file": (["select", str(tmp / "nope.h5"), "-b", "1"], None, ("nope.h5", "no such file")),
        "not hdf5": (["select", str(tmp / "text.h5"), "-b", "1"], None, ("text.h5", "not an HDF5 file")),
        "truncated": (["select", str(tmp / "trunc.h5"), "-b", "1"], None, ("trunc.h5", "truncated")),
        "wrong format": (["select", str(tmp / "fmt.h5"), "-b", "1"], None, ("fmt.h5", "alcli.dataset")),
        "wrong version": (["select", str(tmp / "ver.h5"), "-b", "1"], None, ("ver.h5", "version 99")),
        "nan": (["select", str(tmp / "nan.h5"), "-b", "1"], None, ("nan.h5", "NaN", "[4, 1]")),
        "inf": (["select", str(tmp / "inf.h5"), "-b", "1"], None, ("inf.h5", "inf")),
        "1-D features": (["select", str(tmp / "oned.h5"), "-b", "1"], None, ("oned.h5", "1-D")),
        "index out of range": (["select", g, "--labeled", str(tmp / "range.h5"), "-b", "1"], None,
                               ("range.h5", "25", "outside")),
        "duplicated index": (["select", g, "--labeled", str(tmp / "dup.h5"), "-b", "1"], None,
                             ("dup.h5", "more than once")),
        "budget zero": (["select", g, "-b", "0"], None, ("--budget", "at least 1")),
        "budget negative": (["select", g, "-b", "-3"], None, ("--budget",)),
        "budget too large": (["select", g, "-b", "21"], None, ("--budget", "20 unlabelled")),
        "empty stdin": (["select", "-", "-b", "1"], b"", ("<stdin>", "empty")),
        "garbage stdin": (["select", "-", "-b", "1"], b"garbage", ("<stdin>", "not an HDF5")),
        "missing output folder": (["select", g, "-b", "1", "-o", str(tmp / "no" / "dir" / "o.h5")], None,
                                  ("o.h5", "folder does not exist")),
        "unknown method": (["select", g, "-b", "1", "-m", "nosuch"], None, ("--method", "nosuch")),
        "missing budget": (["select", g], None, ("--budget",)),
    }




@pytest.mark.parametrize("case", [
    "missing file", "not hdf5", "truncated", "wrong format", "wrong version", "nan", "inf", "1-D features",
    "index out of range", "duplicated index", "budget zero", "budget negative", "budget too large",
    "empty stdin", "garbage stdin", "missing output folder", "unknown method", "missing budget",
])
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path: Path, case: str) -> None:
    args, stdin, fragments = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.h5"
    if "-o" not in args:
        args = [*args, "-o", str(out)]
    before = {p.name: _sha(p) for p in tmp_path.iterdir() if p.is_file()}
    proc = run_alcli(*args, input=stdin)
    assert_one_line_error(proc, *fragments)
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not _leftovers(tmp_path)
    assert {p.name: _sha(p) for p in tmp_path.iterdir() if p.is_file()} == before


def test_interrupted_write_leaves_nothing(tmp_path: Path, emb: Path) -> None:
    """Ctrl-C while the command works (b=20,000 takes many seconds): exit 130, one line, no partial output.
    It waits for alcli to say it is running (ALCLI_STARTED_FILE), never a fixed time: a fixed 1.5 s could
    land in the interpreter's start-up, where a Ctrl-C can be lost (see tests/test_reliability.py)."""
    big = tmp_path / "big.h5"
    write_embeddings(str(big), Embeddings(_features(40000, 64), np.arange(40000), 40000))
    started = tmp_path / "started"
    proc = subprocess.Popen([alcli_exe(), "select", str(big), "-b", "20000", "-o", str(tmp_path / "o.h5")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, ALCLI_STARTED_FILE=str(started)), preexec_fn=foreground)
    while not (started.exists() and started.read_text().endswith("running\n")):
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.decode()) == (130, "alcli: error: interrupted\n")
    assert not _leftovers(tmp_path)
    assert not (tmp_path / "o.h5").exists()
