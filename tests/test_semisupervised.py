"""`alcli train --semi-supervised fixmatch`: it beats supervised training on 100 MNIST labels, never trains on
excluded rows, is reproducible, records every hyper-parameter; the strong augmentation and the batch plans."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import SAMPLE, assert_one_line_error, run_alcli
from hypothesis import given, settings
from hypothesis import strategies as st

from alcli.learn import augment, data, semisupervised, training

# 100 labels, 1,000 test, 3,900 unlabelled, small CNN, 1 thread (the same commands as samples/experiment.mk's
# initial models, so docs/results.md has the same numbers): supervised (15 epochs) reaches 0.800 / 0.794 / 0.816
# on seeds 0 / 1 / 2 and FixMatch (5 passes over the unlabelled rows, 90 steps) 0.849 / 0.837 / 0.857, i.e.
# +4.1 to +4.9 points; the margin asserted is 3 points.
MARGIN = 0.03
FIXMATCH_EPOCHS = "5"


def _accuracy(tmp: Path, ckpt: Path) -> float:
    proc = run_alcli("evaluate", ckpt, SAMPLE, "--indices", tmp / "test.h5", "--json", check=True)
    return float(json.loads(proc.stdout)["accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_fixmatch_beats_supervised_on_100_labels(tmp_path: Path, seed: int) -> None:
    run_alcli("split", SAMPLE, "--size", "1000", "--seed", "12345", "-o", tmp_path / "test.h5", check=True)
    run_alcli("split", SAMPLE, "--size", "100", "--seed", str(seed), "--exclude", tmp_path / "test.h5",
              "-o", tmp_path / "l0.h5", check=True)
    common = ["train", SAMPLE, "--labeled", tmp_path / "l0.h5", "--exclude", tmp_path / "test.h5", "--seed",
              str(seed), "--threads", "1", "--device", "cpu"]
    run_alcli(*common, "-o", tmp_path / "sup.h5", check=True)
    proc = run_alcli(*common, "--semi-supervised", "fixmatch", "--epochs", FIXMATCH_EPOCHS,
                     "-o", tmp_path / "fm.h5", "--json", check=True)
    info = json.loads(proc.stdout)
    assert info["unlabeled_count"] == 3900 and info["labeled_count"] == 100
    sup, fm = _accuracy(tmp_path, tmp_path / "sup.h5"), _accuracy(tmp_path, tmp_path / "fm.h5")
    assert fm >= sup + MARGIN, (sup, fm)
    _, ckpt = training.load_model(str(tmp_path / "fm.h5"), "cpu")
    hp = ckpt.hparams
    assert hp["semi_supervised"] == "fixmatch" and hp["threshold"] == 0.95 and hp["mu"] == 7
    assert hp["unlabeled_weight"] == 1.0 and hp["augment"] is True and hp["unlabeled_count"] == 3900
    assert hp["steps"] == 5 * 18 and ckpt.loss.size == 5 and ckpt.labeled_count == 100


def _small(seed: int, **kw: object) -> dict[str, np.ndarray]:
    ds = data.load(str(SAMPLE))
    rows = np.arange(0, 5000, 250)  # 20 labelled rows, every class
    unlabeled = np.arange(1, 5000, 50)  # 100 unlabelled rows
    recipe = training.Recipe(epochs=2, batch_size=8, mu=2, device="cpu", seed=seed, semi_supervised="fixmatch",
                             threshold=0.5, **kw)  # type: ignore[arg-type]
    net, ckpt = training.train(ds, rows, recipe, unlabeled=unlabeled)
    assert ckpt.hparams["steps"] == 2 * 7 and ckpt.hparams["unlabeled_count"] == 100
    return ckpt.state


def test_same_seed_same_weights_and_seed_matters() -> None:
    torch.set_num_threads(1)
    a, b, c = _small(0), _small(0), _small(1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    d = _small(0, unlabeled_weight=0.0)  # λ = 0: the unlabelled views change nothing but the batch
    assert not all(np.array_equal(a[k], d[k]) for k in a)


def test_strong_augmentation_is_seeded_uint8_and_changes_images() -> None:
    ds = data.load(str(SAMPLE))
    for x in (data.uint8_batch(ds.images, np.arange(0, 5000, 100)),
              torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))):
        before = torch.random.get_rng_state()
        one = augment.strong(x, torch.Generator().manual_seed(7))
        assert torch.equal(before, torch.random.get_rng_state())  # no draws from the global RNG
        two = augment.strong(x, torch.Generator().manual_seed(7))
        other = augment.strong(x, torch.Generator().manual_seed(8))
        assert one.dtype == torch.uint8 and one.shape == x.shape and torch.equal(one, two)
        assert not torch.equal(one, other) and not torch.equal(one, x)
        assert bool((one == augment.CUTOUT_FILL).flatten(1).any(dim=1).all())  # every image got a Cutout
    assert "colour" in augment.op_names(3) and "colour" not in augment.op_names(1)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(2, 300), st.integers(1, 8), st.integers(1, 4), st.integers(1, 3),
       st.integers(0, 2**32 - 1))
def test_plans_cover_every_row(n_lab: int, n_unl: int, batch: int, mu: int, epochs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    u = semisupervised.unlabelled_plan(n_unl, batch, mu, epochs, rng)
    for epoch in u:  # one pass over the unlabelled rows per epoch, each exactly once
        assert np.array_equal(np.sort(np.concatenate(epoch)), np.arange(n_unl))
        assert all(b.size == mu * batch for b in epoch[:-1]) and epoch[-1].size <= mu * batch + 1
        assert len(epoch) <= semisupervised.steps_per_epoch(n_unl, batch, mu)
    steps = sum(len(e) for e in u)
    lab = semisupervised.labelled_plan(n_lab, batch, steps, rng)
    assert lab.shape == (steps, batch)
    counts = np.bincount(lab.ravel(), minlength=n_lab)
    assert counts.max() - counts.min() <= 1 + (lab.size // n_lab > 0)  # consecutive reshuffled passes


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fm")
    run_alcli("split", SAMPLE, "--size", "4980", "--seed", "3", "-o", out / "test.h5", check=True)
    run_alcli("split", SAMPLE, "--size", "10", "--seed", "0", "--exclude", out / "test.h5", "-o", out / "l0.h5",
              check=True)
    return out


def test_unlabelled_rows_are_the_rest_minus_excluded(split: Path) -> None:
    proc = run_alcli("train", SAMPLE, "--labeled", split / "l0.h5", "--exclude", split / "test.h5",
                     "--semi-supervised", "fixmatch", "--epochs", "1", "--batch-size", "4", "--mu", "2",
                     "--threshold", "0.7", "--unlabeled-weight", "0.5", "--device", "cpu", "-o", split / "c.h5",
                     "--json", check=True)
    info = json.loads(proc.stdout)
    assert info["unlabeled_count"] == 10 and info["steps"] == 2 and info["semi_supervised"] == "fixmatch"
    with h5py.File(split / "c.h5") as fh:
        hp = json.loads(fh.attrs["hparams"])
    assert (hp["threshold"], hp["mu"], hp["unlabeled_weight"], hp["batch_size"]) == (0.7, 2, 0.5, 4)
    assert hp["epoch_unit"] == "pass over the unlabelled rows"


@pytest.mark.slow
def test_fixmatch_errors(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    base = ["train", SAMPLE, "--labeled", split / "l0.h5", "--semi-supervised", "fixmatch", "-o", out]
    assert_one_line_error(run_alcli(*base, "--threshold", "1.5"), "--threshold")
    assert_one_line_error(run_alcli(*base, "--mu", "0"), "--mu")
    assert_one_line_error(run_alcli(*base, "--unlabeled-weight", "-1"), "--unlabeled-weight")
    assert_one_line_error(run_alcli(*base, "--exclude", split / "l0.h5"), "--exclude")
    run_alcli("split", SAMPLE, "--size", "4989", "--seed", "3", "--exclude", split / "l0.h5", "-o",
              tmp_path / "rest.h5", check=True)
    assert_one_line_error(run_alcli(*base, "--exclude", tmp_path / "rest.h5"), "unlabelled rows")
    assert not out.exists()
