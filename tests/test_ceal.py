"""CEAL's pseudo-labels: exactly the rows below δ with their argmax, for one run only, never written back."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SAMPLE, alcli_exe, assert_one_line_error, run_alcli
from hypothesis import given, settings
from hypothesis import strategies as st

from alcli.artifacts import Dataset, read_dataset, read_embeddings, read_labeled, write_dataset
from alcli.learn import training
from alcli.learn.semisupervised import pseudo_labels


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _brute(probs: np.ndarray, indices: np.ndarray, delta: float, skip: set[int]) -> list[tuple[int, int]]:
    out = []
    for row, p in zip(indices.tolist(), probs.tolist(), strict=True):
        ent = -sum(q * math.log(q) for q in p if q > 0)
        if ent < delta and row not in skip:
            out.append((row, max(range(len(p)), key=lambda c: (p[c], -c))))
    return sorted(out)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30), st.integers(2, 5), st.floats(0, 2), st.integers(0, 2**32 - 1))
def test_pseudo_labels_are_the_rows_below_delta_with_their_argmax(n: int, c: int, delta: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=rng.choice([0.5, 5.0, 50.0]), size=(n, c))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs[rng.random((n, c)) < 0.2] = 0.0  # exact zeros (0·log 0 = 0)
    probs[rng.random(n) < 0.2] = 1.0 / c  # exact ties: the lowest class wins
    probs[probs.sum(axis=1) == 0, 0] = 1.0
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    indices = np.sort(rng.choice(3 * n, n, replace=False))
    skip = rng.choice(3 * n, rng.integers(0, n + 1), replace=False)
    got = pseudo_labels(probs, indices, delta, skip)
    want = _brute(probs.astype(np.float64), indices, delta, set(skip.tolist()))
    ents = -(probs * np.log(np.where(probs > 0, probs, 1.0))).sum(axis=1, dtype=np.float64)
    if np.min(np.abs(ents - delta)) > 1e-9:  # no row on the boundary (summation order)
        assert list(zip(got.rows.tolist(), got.labels.tolist(), strict=True)) == want
    assert got.hparams()["pseudo_count"] == got.rows.size


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ceal")
    run_alcli("split", SAMPLE, "--size", "1000", "--seed", "12345", "-o", out / "test.h5", check=True)
    run_alcli("split", SAMPLE, "--size", "100", "--seed", "0", "--exclude", out / "test.h5", "-o", out / "l0.h5",
              check=True)
    run_alcli("train", SAMPLE, "--labeled", out / "l0.h5", "--epochs", "8", "--threads", "1", "--device", "cpu",
              "-o", out / "c0.h5", check=True)
    run_alcli("embed", SAMPLE, "--checkpoint", out / "c0.h5", "--device", "cpu", "-o", out / "e0.h5", check=True)
    return out


def test_train_adds_exactly_those_rows_and_leaves_the_data_unchanged(setup: Path, tmp_path: Path) -> None:
    emb = read_embeddings(str(setup / "e0.h5"))
    assert emb.probs is not None and emb.n == 5000  # every row, the test split included
    labelled = read_labeled(str(setup / "l0.h5")).indices
    test = read_labeled(str(setup / "test.h5")).indices
    ents = -(emb.probs * np.log(np.where(emb.probs > 0, emb.probs, 1.0))).sum(axis=1, dtype=np.float64)
    delta = float(np.quantile(ents, 0.3))
    want = _brute(emb.probs.astype(np.float64), emb.indices, delta, set(labelled.tolist()) | set(test.tolist()))
    assert 100 < len(want) < 2000
    rows = np.array([r for r, _ in want], np.int64)
    labels = np.array([c for _, c in want], np.int64)
    digest = hashlib.sha256(rows.astype("<i8").tobytes() + labels.astype("<i8").tobytes()).hexdigest()

    before = _sha(SAMPLE)
    ckpt = tmp_path / "c1.h5"
    proc = run_alcli("train", SAMPLE, "--labeled", setup / "l0.h5", "--pseudo-labels", setup / "e0.h5",
                     "--pseudo-threshold", repr(delta), "--exclude", setup / "test.h5", "--epochs", "1",
                     "--threads", "1", "--device", "cpu", "-o", ckpt, "--json", check=True)
    assert _sha(SAMPLE) == before
    info = json.loads(proc.stdout)
    assert info["pseudo_count"] == len(want) and info["labeled_count"] == 100
    _, ck = training.load_model(str(ckpt), "cpu")
    assert ck.hparams["pseudo_count"] == len(want) and ck.hparams["pseudo_sha256"] == digest
    assert ck.hparams["pseudo_threshold"] == delta and ck.hparams["pseudo_source"] == emb.sha256
    assert ck.labeled_count == 100 and ck.parents["pseudo_labels"] == emb.sha256
    # without --exclude the test rows below δ would join: the option is what keeps them out
    loose = _brute(emb.probs.astype(np.float64), emb.indices, delta, set(labelled.tolist()))
    assert len(loose) > len(want)


@pytest.mark.slow
def test_pseudo_label_errors(setup: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    base = ["train", SAMPLE, "--labeled", setup / "l0.h5", "--epochs", "1", "-o", out]
    assert_one_line_error(run_alcli(*base, "--pseudo-threshold", "0.1"), "--pseudo-labels")
    assert_one_line_error(run_alcli(*base, "--pseudo-labels", setup / "e0.h5"), "--pseudo-threshold")
    assert_one_line_error(run_alcli(*base, "--pseudo-labels", setup / "e0.h5", "--pseudo-threshold", "-1"),
                          "--pseudo-threshold")
    assert_one_line_error(run_alcli(*base, "--pseudo-labels", setup / "l0.h5", "--pseudo-threshold", "0.1"),
                          "l0.h5")
    assert_one_line_error(run_alcli(*base, "--pseudo-labels", setup / "e0.h5", "--pseudo-threshold", "0.1",
                                    "--exclude", setup / "l0.h5"), "--exclude")
    assert not out.exists()


def _make(cwd: Path, *args: str, dry: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(alcli_exe()).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = ["make", "-f", str(ROOT / "samples" / "experiment.mk"), *(["-n"] if dry else ["-j2"]), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_experiment_plans_ceal_and_semi_supervised_rounds(tmp_path: Path) -> None:
    args = ["DATA=d.h5", "NAME=t", "METHODS=ceal kcenter", "SEEDS=0", "ROUNDS=3", "SEMI=fixmatch",
            "CEAL_DELTA=0.05", "CEAL_DR=0.02"]
    plan = _make(tmp_path, *args, dry=True)
    assert plan.returncode == 0, plan.stderr
    trains = [ln for ln in plan.stdout.splitlines() if " train " in ln]
    assert len(trains) == 1 + 2 * 3  # the shared initial model, then every round of both methods
    assert all("--semi-supervised fixmatch" in ln and "--exclude runs/t/test.h5" in ln for ln in trains)
    ceal = [ln for ln in trains if "/ceal/" in ln]
    deltas = [float(ln.split("--pseudo-threshold ")[1].split()[0]) for ln in ceal]
    assert deltas == pytest.approx([0.03, 0.01, 0.0])  # δ_r = δ_0 − r·dr, floored at 0
    assert not any("--pseudo-labels" in ln for ln in trains if "/ceal/" not in ln)
    selects = [ln for ln in plan.stdout.splitlines() if " select " in ln]
    assert all("--method least-confidence" in ln for ln in selects if "/ceal/" in ln)
    assert all("--method kcenter" in ln for ln in selects if "/kcenter/" in ln)


@pytest.mark.slow
def test_experiment_runs_ceal_with_fixmatch(tmp_path: Path) -> None:
    full = read_dataset(str(SAMPLE))
    rows = np.sort(np.random.default_rng(0).permutation(full.n)[:300])
    write_dataset(str(tmp_path / "tiny.h5"), Dataset(full.images[rows], full.labels[rows], full.class_names))
    args = ["DATA=tiny.h5", "NAME=t", "METHODS=ceal", "SEEDS=0", "ROUNDS=1", "INITIAL=20", "BUDGET=10",
            "TEST=100", "EPOCHS=1", "SEMI=fixmatch", "CEAL_DELTA=1.5", "CEAL_DR=0.5", "TRAIN_ARGS=--threads 1"]
    proc = _make(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "runs" / "t"
    _, ck = training.load_model(str(out / "ceal" / "seed0" / "round1" / "ckpt.h5"), "cpu")
    assert ck.hparams["semi_supervised"] == "fixmatch" and ck.hparams["pseudo_threshold"] == 1.0
    assert ck.labeled_count == 30 and ck.hparams["pseudo_count"] > 0
    assert ck.hparams["unlabeled_count"] == 300 - 100 - 30 - ck.hparams["pseudo_count"]
    assert (out / "curve.csv").exists()
