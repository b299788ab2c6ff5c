"""CEAL's pseudo-labels: exactly the rows below δ with their argmax, for one run only, never written back."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE, assert_one_line_error, run_alcli
from hypothesis import given, settings
from hypothesis import strategies as st

from alcli import training
from alcli.artifacts import read_embeddings, read_labeled
from alcli.semisupervised import pseudo_labels


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
