"""`alcli train`, `embed`, `evaluate` on real MNIST images through the installed CLI (real pipes), and the
checkpoint format: round trip, reproducibility, and every corrupt or foreign checkpoint exits 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import SAMPLE, assert_one_line_error, run_alcli, shell

from alcli.artifacts import read_embeddings, read_labeled, read_report, write_checkpoint
from alcli.artifacts.output import seal
from alcli.errors import AlcliError
from alcli.learn import data, models, training

ACCURACY_FLOOR = 0.85  # the default recipe reaches ~0.93 on this split (500 labelled, 1,000 test)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test split of 1,000, a labelled set of 500 (disjoint) and a small CNN trained on it."""
    out = tmp_path_factory.mktemp("round")
    run_alcli("split", SAMPLE, "--size", "1000", "--seed", "0", "-o", out / "test.h5", check=True)
    run_alcli("split", SAMPLE, "--size", "500", "--seed", "1", "--exclude", out / "test.h5", "-o", out / "l0.h5",
              check=True)
    run_alcli("train", SAMPLE, "--labeled", out / "l0.h5", "--seed", "0", "--device", "cpu", "-o", out / "c0.h5",
              check=True)
    return out


def test_small_cnn_reaches_accuracy_floor(work: Path) -> None:
    proc = run_alcli("evaluate", work / "c0.h5", SAMPLE, "--indices", work / "test.h5", "--json",
                     "-o", work / "r0.h5", check=True)
    info = json.loads(proc.stdout)
    assert info["n_test"] == 1000 and info["labeled_count"] == 500
    assert info["accuracy"] >= ACCURACY_FLOOR, info["accuracy"]
    rep = read_report(str(work / "r0.h5"))
    assert rep.accuracy == pytest.approx(info["accuracy"])
    assert rep.confusion.shape == (10, 10) and rep.confusion.sum() == 1000
    assert rep.accuracy == pytest.approx(np.trace(rep.confusion) / 1000)
    assert rep.attrs["method"] == "split" and rep.attrs["round"] == 0
    assert np.allclose(rep.per_class_accuracy, np.diag(rep.confusion) / rep.confusion.sum(axis=1))


def test_checkpoint_records_provenance_and_log(work: Path) -> None:
    net, ckpt = training.load_model(str(work / "c0.h5"), "cpu")
    assert ckpt.arch == "small" and ckpt.input_shape == (1, 28, 28) and ckpt.num_classes == 10
    assert ckpt.labeled_count == 500 and ckpt.loss.size == ckpt.hparams["epochs"]
    assert ckpt.loss[-1] < ckpt.loss[0]
    assert ckpt.parents["labeled"] == read_labeled(str(work / "l0.h5")).sha256
    assert ckpt.hparams["optimizer"] == "rmsprop" and ckpt.hparams["lr"] == 1e-3
    with h5py.File(work / "c0.h5") as fh:
        assert fh.attrs["format"] == "alcli.checkpoint" and int(fh.attrs["version"]) == 1


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    ds = data.load(str(SAMPLE))
    rows = np.sort(np.random.default_rng(0).choice(ds.n, 24, replace=False))
    for arch in ("small", "vgg16"):  # vgg16: batch-norm buffers must survive the trip
        net, ckpt = training.train(ds, rows, training.Recipe(arch=arch, epochs=1, batch_size=12, device="cpu"))
        path = str(tmp_path / f"{arch}.h5")
        write_checkpoint(path, ckpt)
        again, _ = training.load_model(path, "cpu")
        net.eval()
        x = data.batch_tensor(ds.images, np.arange(40), ckpt.mean, ckpt.std)
        with torch.no_grad():
            assert torch.equal(net(x), again(x))
            assert torch.equal(net.features(x), again.features(x))


def _weights(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path) as fh:
        return {k: v[()] for k, v in fh["state"].items()}


@pytest.mark.slow
def test_same_seed_same_weights_on_cpu(work: Path, tmp_path: Path) -> None:
    run_alcli("split", SAMPLE, "--size", "64", "--seed", "5", "-o", tmp_path / "l.h5", check=True)
    common = ("train", SAMPLE, "--labeled", tmp_path / "l.h5", "--epochs", "2", "--augment", "--device", "cpu")
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        run_alcli(*common, "--seed", seed, "-o", tmp_path / f"{name}.h5", check=True)
    a, b, c = (_weights(tmp_path / f"{n}.h5") for n in "abc")
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_embed_shapes_values_and_determinism(work: Path, tmp_path: Path) -> None:
    run_alcli("split", SAMPLE, "--size", "1200", "--seed", "9", "-o", tmp_path / "sub.h5", check=True)
    args = ("embed", SAMPLE, "--checkpoint", work / "c0.h5", "--indices", tmp_path / "sub.h5",
            "--exclude", work / "test.h5", "--mc-samples", "3", "--grad-embedding", "--batch-size", "300")
    run_alcli(*args, "-o", tmp_path / "e1.h5", check=True)
    run_alcli(*args, tmp_path / "e2.h5", check=True)
    e1, e2 = read_embeddings(str(tmp_path / "e1.h5")), read_embeddings(str(tmp_path / "e2.h5"))
    test = read_labeled(str(work / "test.h5")).indices
    sub = read_labeled(str(tmp_path / "sub.h5")).indices
    assert np.array_equal(e1.indices, np.setdiff1d(sub, test))
    n = e1.indices.size
    assert 800 < n < 1200
    assert e1.features.shape == (n, 128) and e1.features.dtype == np.float32
    assert e1.probs.shape == (n, 10) and e1.mc_probs.shape == (3, n, 10) and e1.grad_features.shape == (n, 1280)
    for key in ("features", "probs", "mc_probs", "grad_features"):
        assert np.array_equal(getattr(e1, key), getattr(e2, key)), key
    assert np.allclose(e1.probs.sum(1), 1, atol=1e-5) and np.allclose(e1.mc_probs.sum(2), 1, atol=1e-5)
    assert not np.array_equal(e1.mc_probs[0], e1.mc_probs[1])  # dropout really is on
    onehot = np.eye(10, dtype=np.float32)[e1.probs.argmax(1)]
    expect = ((e1.probs - onehot)[:, :, None] * e1.features[:, None, :]).reshape(n, -1)
    assert np.allclose(e1.grad_features, expect, atol=1e-6)
    assert e1.pool_size == 5000 and e1.attrs["checkpoint"].endswith("c0.h5")
    # features are what the model computes for those rows
    net, ckpt = training.load_model(str(work / "c0.h5"), "cpu")
    with torch.no_grad():
        feats = net.features(data.batch_tensor(data.load(str(SAMPLE)).images, e1.indices[:50], ckpt.mean, ckpt.std))
    assert np.allclose(feats.numpy(), e1.features[:50], atol=1e-5)


@pytest.mark.slow
def test_embed_pipes_into_select(work: Path) -> None:
    proc = shell(f"alcli -q embed {SAMPLE} --checkpoint c0.h5 --exclude test.h5 - "
                 "| alcli -q select - --labeled l0.h5 --budget 20 --exclude test.h5 -o l1.h5", cwd=work)
    assert proc.returncode == 0, proc.stderr
    l0, l1 = read_labeled(str(work / "l0.h5")), read_labeled(str(work / "l1.h5"))
    test = read_labeled(str(work / "test.h5")).indices
    assert l1.indices.size == 520 and np.isin(l0.indices, l1.indices).all()
    assert not np.isin(l1.indices, test).any()
    assert l1.attrs["method"] == "kcenter"


@pytest.mark.parametrize("arch", ["small", "vgg16", "resnet18"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_arch_takes_grey_and_colour(arch: str, shape: tuple[int, int, int]) -> None:
    net = models.build(arch, shape, 10, seed=0)
    x = torch.randn(4, *shape)
    net.train()
    assert net(x).shape == (4, 10)
    assert net.features(x).shape == (4, net.feature_dim)
    assert any(isinstance(m, torch.nn.Dropout) for m in net.head)
    want = models.expected_tensors(arch, shape, 10)
    got = models.state_arrays(net)
    assert {k: (v.shape, str(v.dtype)) for k, v in got.items()} == want


@pytest.mark.slow
def test_resnet18_on_colour_images_through_the_cli(shared_data: Path, tmp_path: Path) -> None:
    cifar = shared_data / "cifar10-test.h5"
    run_alcli("split", cifar, "--size", "16", "--seed", "0", "-o", tmp_path / "l.h5", check=True)
    run_alcli("train", cifar, "--labeled", tmp_path / "l.h5", "--arch", "resnet18", "--epochs", "1",
              "--batch-size", "8", "--augment", "--device", "cpu", "-o", tmp_path / "c.h5", check=True)
    run_alcli("embed", cifar, "--checkpoint", tmp_path / "c.h5", "--indices", tmp_path / "l.h5",
              "-o", tmp_path / "e.h5", check=True)
    emb = read_embeddings(str(tmp_path / "e.h5"))
    assert emb.features.shape == (16, 512)
    proc = run_alcli("evaluate", tmp_path / "c.h5", SAMPLE)
    assert_one_line_error(proc, "28", "32")  # grey 28×28 images for a colour 32×32 model


@pytest.mark.gpu
def test_train_embed_evaluate_on_cuda(work: Path, tmp_path: Path) -> None:
    run_alcli("train", SAMPLE, "--labeled", work / "l0.h5", "--device", "cuda", "-o", tmp_path / "c.h5", check=True)
    run_alcli("embed", SAMPLE, "--checkpoint", tmp_path / "c.h5", "--device", "cuda", "--mc-samples", "2",
              "--grad-embedding", "-o", tmp_path / "e.h5", check=True)
    emb = read_embeddings(str(tmp_path / "e.h5"))
    assert emb.features.shape == (5000, 128) and emb.mc_probs.shape == (2, 5000, 10)
    proc = run_alcli("evaluate", tmp_path / "c.h5", SAMPLE, "--indices", work / "test.h5", "--device", "cuda",
                     "--json", check=True)
    assert json.loads(proc.stdout)["accuracy"] >= ACCURACY_FLOOR


# ---------------------------------------------------------------------------------------------- bad input


def _mutate(src: Path, dst: Path, edit) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as fh:
        edit(fh)
    seal(str(dst))  # an artifact edited on purpose: readers get past the seal to the check under test
    return dst


def _replace(fh: h5py.File, name: str, value: np.ndarray) -> None:
    del fh[name]
    fh[name] = value


BAD_CHECKPOINTS = {
    "wrong-format": (lambda fh: fh.attrs.__setitem__("format", "alcli.embeddings"), ["'alcli.checkpoint'"]),
    "no-format": (lambda fh: fh.attrs.__delitem__("format"), ["format"]),
    "version-9": (lambda fh: fh.attrs.__setitem__("version", 9), ["version 9"]),
    "unknown-arch": (lambda fh: fh.attrs.__setitem__("arch", "alexnet"), ["alexnet"]),
    "missing-tensor": (lambda fh: fh.__delitem__("state/trunk.0.weight"), ["state/trunk.0.weight", "missing"]),
    "wrong-shape": (lambda fh: _replace(fh, "state/head.1.bias", np.zeros(7, np.float32)),
                    ["state/head.1.bias", "(7,)", "(10,)"]),
    "wrong-dtype": (lambda fh: _replace(fh, "state/head.1.bias", np.zeros(10, np.float64)),
                    ["state/head.1.bias", "float64"]),
    "extra-tensor": (lambda fh: fh.create_dataset("state/evil", data=np.zeros(3)), ["state/evil", "unexpected"]),
    "nan-weight": (lambda fh: _replace(fh, "state/head.1.bias", np.full(10, np.nan, np.float32)),
                   ["state/head.1.bias", "NaN"]),
    "no-mean": (lambda fh: fh.__delitem__("mean"), ["mean"]),
}


# one case in the fast tier; every case in the slow one (each is a whole `alcli evaluate` start)
THROUGH_CLI = ("wrong-format", *(pytest.param(case, marks=pytest.mark.slow)
                                 for case in ("missing-tensor", "wrong-shape", "extra-tensor")))


@pytest.mark.parametrize("case", THROUGH_CLI)
def test_corrupt_or_foreign_checkpoint_exits_2(work: Path, tmp_path: Path, case: str) -> None:
    edit, fragments = BAD_CHECKPOINTS[case]
    bad = _mutate(work / "c0.h5", tmp_path / f"{case}.h5", edit)
    proc = run_alcli("evaluate", bad, SAMPLE, "--indices", work / "test.h5")
    assert_one_line_error(proc, f"{case}.h5", *fragments)


def test_every_checkpoint_defect_is_one_clear_error(work: Path, tmp_path: Path) -> None:
    for case, (edit, fragments) in sorted(BAD_CHECKPOINTS.items()):
        bad = _mutate(work / "c0.h5", tmp_path / f"{case}.h5", edit)
        with pytest.raises(AlcliError) as info:
            training.load_model(str(bad), "cpu")
        text = str(info.value)
        assert "\n" not in text and text.startswith(str(bad)), text
        for frag in fragments:
            assert frag in text, (case, frag, text)


@pytest.mark.slow
def test_not_a_checkpoint_at_all(work: Path, tmp_path: Path) -> None:
    (tmp_path / "junk.h5").write_bytes(b"\x80\x04K\x01." * 10)  # a pickle, of all things
    proc = run_alcli("embed", SAMPLE, "--checkpoint", tmp_path / "junk.h5", "-o", tmp_path / "e.h5")
    assert_one_line_error(proc, "junk.h5", "not an HDF5 file")
    proc = run_alcli("evaluate", work / "l0.h5", SAMPLE)
    assert_one_line_error(proc, "l0.h5", "'alcli.checkpoint'")
    assert not (tmp_path / "e.h5").exists()


def test_training_on_unlabelled_row_exits_2(work: Path, tmp_path: Path) -> None:
    lab = read_labeled(str(work / "l0.h5"))
    row = int(lab.indices[3])
    with h5py.File(SAMPLE) as src, h5py.File(tmp_path / "partial.h5", "w") as dst:
        labels = src["labels"][()]
        labels[row] = -1
        dst["images"] = src["images"][()]
        dst["labels"] = labels
        dst.attrs["class_names"] = src.attrs["class_names"]
    proc = run_alcli("train", tmp_path / "partial.h5", "--labeled", work / "l0.h5", "-o", tmp_path / "c.h5")
    assert_one_line_error(proc, f"row {row}", "-1")
    assert not (tmp_path / "c.h5").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--epochs", "0"), ["--epochs"]),
        pytest.param(("--lr", "-1"), ["--lr"], marks=pytest.mark.slow),
        pytest.param(("--batch-size", "0"), ["--batch-size"], marks=pytest.mark.slow),
        (("--arch", "alexnet"), ["--arch"]),
    ],
)
def test_bad_training_options_exit_2(work: Path, tmp_path: Path, args: tuple[str, ...], fragments: list[str]) -> None:
    proc = run_alcli("train", SAMPLE, "--labeled", work / "l0.h5", *args, "-o", tmp_path / "c.h5")
    assert_one_line_error(proc, *fragments)


@pytest.mark.slow
def test_labelled_set_for_another_pool_exits_2(work: Path, tmp_path: Path, shared_data: Path) -> None:
    proc = run_alcli("train", shared_data / "cifar10-test.h5", "--labeled", work / "l0.h5", "-o", tmp_path / "c.h5")
    assert_one_line_error(proc, "l0.h5", "5000")
    proc = run_alcli("embed", SAMPLE, "--checkpoint", work / "c0.h5", "--exclude", work / "l0.h5", "--indices",
                     work / "l0.h5", "-o", tmp_path / "e.h5")
    assert_one_line_error(proc, "--exclude", "no rows")
