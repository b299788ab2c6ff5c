"""Every query strategy through the installed `alcli select`: same artifact, summary and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_alcli
from test_strategies import MINE, blobs, softmax

from alcli.artifacts import (
    Dataset,
    Embeddings,
    LabeledSet,
    read_labeled,
    write_dataset,
    write_embeddings,
    write_labeled,
)
from alcli.selection import REGISTRY

N = 120


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("strategies")
    x, y = blobs(k=6, per=20, d=8)
    rng = np.random.default_rng(0)
    probs = softmax(2 * rng.normal(size=(N, 6)))
    mc = softmax(2 * rng.normal(size=(4, N, 6)))
    out = {name: tmp / f"{name}.h5" for name in ("full", "bare", "probs_only", "lab", "data", "half")}
    write_embeddings(str(out["full"]), Embeddings(x, np.arange(N), N, probs=probs, mc_probs=mc))
    write_embeddings(str(out["bare"]), Embeddings(x, np.arange(N), N))
    write_embeddings(str(out["probs_only"]), Embeddings(x, np.arange(N), N, probs=probs))
    write_labeled(str(out["lab"]), LabeledSet(np.array([3, 50, 99]), np.zeros(3, np.int32), N))
    images = np.zeros((N, 2, 2), np.uint8)
    write_dataset(str(out["data"]), Dataset(images, y, [str(c) for c in range(6)]))
    write_dataset(str(out["half"]), Dataset(images, np.where(np.arange(N) % 2 == 0, y, -1), [str(c) for c in range(6)]))
    return out


def test_help_lists_every_method():
    proc = run_alcli("select", "--help", check=True)
    text = proc.stdout.decode()
    for name, strat in REGISTRY.items():
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(name + " ")), None)
        assert line is not None, name
        assert strat.summary.split()[0] in line


@pytest.mark.parametrize("method", MINE)
def test_each_method_end_to_end(method: str, files: dict[str, Path], tmp_path: Path):
    out = tmp_path / "l1.h5"
    args = ["select", files["full"], "--labeled", files["lab"], "-b", "5", "-m", method, "--seed", "3",
            "-o", out, "--json"]
    if method == "oracle-uncertainty":
        args += ["--labels", files["data"]]
    proc = run_alcli(*args, check=True)
    info = json.loads(proc.stdout)
    assert info["method"] == method and info["picked"] == 5 and info["labeled_after"] == 8
    lab = read_labeled(str(out))
    assert lab.last_picks.size == 5 and set(lab.indices) >= {3, 50, 99}
    assert lab.last_scores.size == 5 and lab.attrs["score_name"]
    if REGISTRY[method].covering:
        assert info["radius_after"] is not None and info["radius_after"] <= info["radius_before"]
    again = tmp_path / "again.h5"
    run_alcli(*[again if a == out else a for a in args], check=True)
    assert list(read_labeled(str(again)).last_picks) == list(lab.last_picks)


@pytest.mark.parametrize("method,need,artifact", [
    ("entropy", "probs", "bare"),
    ("margin", "probs", "bare"),
    ("least-confidence", "probs", "bare"),
    ("badge", "probs", "bare"),
    ("kcenter-uncertain", "probs", "bare"),
    ("bald", "mc_probs", "probs_only"),
    ("variation-ratios", "mc_probs", "probs_only"),
    ("oracle-uncertainty", "labels", "probs_only"),
])
def test_missing_inputs_exit_2_one_line(method: str, need: str, artifact: str, files: dict[str, Path]):
    proc = run_alcli("select", files[artifact], "-b", "3", "-m", method, "-o", files["lab"].parent / "no.h5")
    assert_one_line_error(proc, method, f"'{need}'")
    assert not (files["lab"].parent / "no.h5").exists()


def test_oracle_refuses_unknown_candidate_labels(files: dict[str, Path], tmp_path: Path):
    proc = run_alcli("select", files["full"], "-b", "3", "-m", "oracle-uncertainty", "--labels", files["half"],
                     "-o", tmp_path / "o.h5")
    assert_one_line_error(proc, "--labels", "no known label")
    assert not (tmp_path / "o.h5").exists()


def test_probcover_bad_delta(files: dict[str, Path], tmp_path: Path):
    proc = run_alcli("select", files["full"], "-b", "3", "-m", "probcover", "--probcover-delta", "-1",
                     "-o", tmp_path / "o.h5")
    assert_one_line_error(proc, "--probcover-delta", "> 0")
