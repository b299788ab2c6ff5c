"""Pretrained torchvision backbones from local weight files: `embed --backbone`, `train --backbone`, bad files.

Fast: resnet18 with random-init weights saved to a temporary file, 64×64 inputs, pools of 20 images.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torchvision
from conftest import assert_one_line_error, run_alcli

from alcli.errors import AlcliError
from alcli.learn import backbones, training
from alcli.learn.weights import read_safetensors, write_safetensors

SIZE = 64
MEAN = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
STD = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backbone")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    torch.save(net.state_dict(), out / "r18.pth")
    write_safetensors(str(out / "r18.safetensors"), net.state_dict(), {"format": "pt"})
    rng = np.random.default_rng(0)
    with h5py.File(out / "colour.h5", "w") as fh:
        fh["images"] = rng.integers(0, 256, (20, 40, 40, 3), dtype=np.uint8)
        fh["labels"] = np.arange(20) % 4
    with h5py.File(out / "grey.h5", "w") as fh:
        fh["images"] = rng.integers(0, 256, (20, SIZE, SIZE), dtype=np.uint8)
        fh["labels"] = np.arange(20) % 4
    run_alcli("split", out / "colour.h5", "--size", "12", "--seed", "0", "-o", out / "l0.h5", check=True)
    return out


def reference(files: Path, pool: str) -> np.ndarray:
    """A plain torchvision forward pass: /255, 3 channels, resize to SIZE, ImageNet mean/std, fc = Identity."""
    net = torchvision.models.resnet18(weights=None)
    net.load_state_dict(torch.load(files / "r18.pth", weights_only=True))
    net.fc = torch.nn.Identity()
    net.eval()
    with h5py.File(files / pool) as fh:
        x = torch.from_numpy(fh["images"][()]).float() / 255.0
    x = x[:, None].expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[-1] != SIZE:
        x = torch.nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True)
    with torch.inference_mode():
        return net((x - MEAN) / STD).numpy()


def embed(files: Path, pool: str, weights: str, out: str, *extra: str) -> dict:
    proc = run_alcli("embed", files / pool, "--backbone", "resnet18", "--weights", files / weights, "--image-size",
                     str(SIZE), "--device", "cpu", "-o", files / out, *extra, check=True)
    assert "images/s" in proc.stderr
    with h5py.File(files / out) as fh:
        assert "probs" not in fh
        return {"features": fh["features"][()], "attrs": dict(fh.attrs)}


@pytest.fixture(scope="module")
def colour(files: Path) -> dict:
    """The colour pool embedded once from the .pth file (40×40 images resized to 64×64)."""
    return embed(files, "colour.h5", "r18.pth", "e-colour.h5")


def test_features_equal_a_plain_torchvision_pass(files: Path, colour: dict) -> None:
    assert colour["features"].shape == (20, 512)
    np.testing.assert_allclose(colour["features"], reference(files, "colour.h5"), atol=1e-4, rtol=0)
    assert colour["attrs"]["backbone"] == "resnet18"


def test_grey_pool_from_safetensors_in_process(files: Path) -> None:
    """Grey images at --image-size already (no resize), weights from .safetensors, batches read in process."""
    got = embed(files, "grey.h5", "r18.safetensors", "eg.h5", "--workers", "0")["features"]
    np.testing.assert_allclose(got, reference(files, "grey.h5"), atol=1e-4, rtol=0)


def test_default_batch_holds_the_pixels_of_32_imagenet_images() -> None:
    from alcli.learn.embedding import auto_batch_size

    assert [auto_batch_size(s, s) for s in (28, 32, 64, 160, 224, 448, 5000)] == [256, 256, 256, 62, 32, 8, 1]
    assert auto_batch_size(224, 448) == 16 and auto_batch_size(0, 0) == 256


def test_default_batch_follows_the_size_the_network_sees(files: Path) -> None:
    """64×64 images embedded at --image-size 448 go in batches of 8: the network's input decides, not the
    file's (one row, to stay quick; the slow tier checks the features across batch sizes)."""
    run_alcli("split", files / "grey.h5", "--size", "1", "--seed", "1", "-o", files / "one.h5", check=True)
    proc = run_alcli("embed", files / "grey.h5", "--indices", files / "one.h5", "--backbone", "resnet18",
                     "--weights", files / "r18.pth", "--image-size", "448", "--device", "cpu", "-o", files / "e1.h5",
                     check=True)
    assert "in batches of 8 " in proc.stderr


@pytest.mark.slow
def test_default_batch_gives_the_features_of_any_batch(files: Path) -> None:
    """10 rows at --image-size 448: batches of 8 + 2 by default, the same features as 3 + 3 + 3 + 1."""
    run_alcli("split", files / "grey.h5", "--size", "10", "--seed", "1", "-o", files / "ten.h5", check=True)
    common = ("embed", files / "grey.h5", "--indices", files / "ten.h5", "--backbone", "resnet18", "--weights",
              files / "r18.pth", "--image-size", "448", "--device", "cpu")
    auto = run_alcli(*common, "-o", files / "e448.h5", check=True)
    assert "in batches of 8 " in auto.stderr
    three = run_alcli(*common, "--batch-size", "3", "-o", files / "e448-3.h5", check=True)
    assert "in batches of 3 " in three.stderr
    with h5py.File(files / "e448.h5") as a, h5py.File(files / "e448-3.h5") as b:
        np.testing.assert_allclose(a["features"][()], b["features"][()], atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("pool, weights", [("colour.h5", "r18.safetensors"), ("grey.h5", "r18.pth")])
def test_features_equal_a_plain_torchvision_pass_every_pairing(files: Path, pool: str, weights: str) -> None:
    got = embed(files, pool, weights, f"e-{pool}-{weights}.h5")["features"]
    np.testing.assert_allclose(got, reference(files, pool), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_bf16_on_the_cpu_stays_close(files: Path) -> None:
    ref = reference(files, "grey.h5")
    low = embed(files, "grey.h5", "r18.pth", "eg16.h5", "--precision", "bf16")["features"]
    rel = np.linalg.norm(low - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 0.05, rel.max()


def test_safetensors_reader_round_trips_dtypes(tmp_path: Path) -> None:
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.int64), "c": torch.randn(2).bfloat16(),
               "d": torch.randn(2, 2).half(), "e": torch.zeros(0)}
    write_safetensors(str(tmp_path / "t.safetensors"), tensors)
    back = read_safetensors(str(tmp_path / "t.safetensors"))
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k


def test_safetensors_agrees_with_the_package(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    tensors = {"w": torch.randn(3, 5), "h": torch.randn(4).half(), "i": torch.arange(3, dtype=torch.int32)}
    st.save_file(tensors, str(tmp_path / "p.safetensors"))
    back = read_safetensors(str(tmp_path / "p.safetensors"))
    assert all(torch.equal(back[k], v) for k, v in tensors.items())
    write_safetensors(str(tmp_path / "o.safetensors"), tensors)
    theirs = st.load_file(str(tmp_path / "o.safetensors"))
    assert all(torch.equal(theirs[k], v) for k, v in tensors.items())


@pytest.mark.slow
def test_finetune_embed_select_evaluate_through_the_cli(files: Path) -> None:
    common = ("--backbone", "resnet18", "--weights", files / "r18.pth", "--image-size", str(SIZE), "--epochs", "2",
              "--batch-size", "6", "--device", "cpu", "--seed", "3")
    run_alcli("train", files / "colour.h5", "--labeled", files / "l0.h5", *common, "-o", files / "ft.h5", check=True)
    net, ckpt = training.load_model(str(files / "ft.h5"), "cpu")
    assert ckpt.arch == "torchvision.resnet18" and ckpt.num_classes == 4 and net.feature_dim == 512
    assert ckpt.hparams["backbone"] == "resnet18" and ckpt.hparams["image_size"] == SIZE
    assert len(ckpt.hparams["weights_sha256"]) == 64
    (files / "r18-moved.pth").write_bytes((files / "r18.pth").read_bytes())
    run_alcli("embed", files / "colour.h5", "--checkpoint", files / "ft.h5", "--device", "cpu", "-o", files / "eft.h5",
              check=True)  # the checkpoint holds every tensor: the weights file is not needed
    with h5py.File(files / "eft.h5") as fh:
        assert fh["features"].shape == (20, 512) and fh["probs"].shape == (20, 4)
    run_alcli("select", files / "eft.h5", "--labeled", files / "l0.h5", "--method", "entropy", "--budget", "3",
              "-o", files / "l1.h5", check=True)
    proc = run_alcli("evaluate", files / "ft.h5", files / "colour.h5", "--device", "cpu", "--json", check=True)
    assert json.loads(proc.stdout)["n_test"] == 20
    run_alcli("train", files / "colour.h5", "--labeled", files / "l0.h5", *common, "-o", files / "ft2.h5", check=True)
    a, b = training.load_model(str(files / "ft.h5"))[1], training.load_model(str(files / "ft2.h5"))[1]
    assert all(np.array_equal(a.state[k], b.state[k]) for k in a.state)  # same seed, same weights


def test_freeze_backbone_trains_the_head_only(files: Path) -> None:
    run_alcli("train", files / "colour.h5", "--labeled", files / "l0.h5", "--backbone", "resnet18", "--weights",
              files / "r18.safetensors", "--image-size", str(SIZE), "--epochs", "2", "--batch-size", "6",
              "--freeze-backbone", "--device", "cpu", "-o", files / "probe.h5", check=True)
    ckpt = training.load_model(str(files / "probe.h5"))[1]
    original = torch.load(files / "r18.pth", weights_only=True)
    for key, value in original.items():
        if not key.startswith("fc."):
            assert np.array_equal(ckpt.state[f"trunk.1.{key}"], value.numpy()), key
    assert ckpt.hparams["freeze_backbone"] is True


def test_entropy_on_backbone_features_says_probs_are_missing(files: Path, colour: dict) -> None:
    proc = run_alcli("select", files / "e-colour.h5", "--labeled", files / "l0.h5", "--method", "entropy", "--budget",
                     "2", "-o", files / "x.h5")
    assert_one_line_error(proc, "probs")


def _bad_weights(files: Path) -> dict[str, Path]:
    bad = files / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "garbage.pth").write_bytes(np.random.default_rng(1).bytes(4000))
    (bad / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), bad / "other.pth")
    state = torch.load(files / "r18.pth", weights_only=True)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    torch.save(state, bad / "shapes.pth")
    state = torch.load(files / "r18.pth", weights_only=True)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, bad / "extra.pth")
    torch.save({"args": argparse.Namespace(lr=1), "counts": collections.OrderedDict()}, bad / "pickle.pth")
    return {"missing": bad / "absent.pth", "garbage": bad / "garbage.pth", "garbage-st": bad / "garbage.safetensors",
            "other": bad / "other.pth", "shapes": bad / "shapes.pth", "extra": bad / "extra.pth",
            "pickle": bad / "pickle.pth"}


FRAGMENTS = {"missing": "no such file", "garbage": "not a torch state dict", "garbage-st": "not a .safetensors",
             "other": "missing tensor 'conv1.weight'", "shapes": "'layer1.0.conv1.weight' has shape",
             "extra": "unexpected tensor 'extra.weight'", "pickle": "weights_only"}


def test_bad_weights_files_raise_one_line_naming_the_file(files: Path) -> None:
    """Every kind of bad file, through the function both commands call (in process: one torch import)."""
    for case, path in _bad_weights(files).items():
        with pytest.raises(AlcliError) as caught:
            backbones.pretrained("resnet18", str(path), SIZE)
        text = str(caught.value)
        assert "\n" not in text and text.startswith(f"{path}: "), text
        assert FRAGMENTS[case] in text, (case, text)


@pytest.mark.parametrize("command, cases", [
    ("embed", ("shapes",)),
    pytest.param("embed", tuple(FRAGMENTS), marks=pytest.mark.slow),
    pytest.param("train", tuple(FRAGMENTS), marks=pytest.mark.slow)])
def test_bad_weights_files_exit_2_naming_the_file(files: Path, command: str, cases: tuple[str, ...]) -> None:
    bad = _bad_weights(files)
    for case in cases:
        out = files / f"never-{command}-{case}.h5"
        args = ("--labeled", files / "l0.h5", "--epochs", "1") if command == "train" else ()
        proc = run_alcli(command, files / "colour.h5", *args, "--backbone", "resnet18", "--weights", bad[case],
                         "--image-size", str(SIZE), "--device", "cpu", "-o", out)
        assert_one_line_error(proc, str(bad[case]), FRAGMENTS[case])
        assert not out.exists()


def test_backbone_option_errors(files: Path) -> None:
    proc = run_alcli("embed", files / "colour.h5", "--backbone", "resnet18", "-o", files / "x.h5")
    assert_one_line_error(proc, "--weights")
    proc = run_alcli("embed", files / "colour.h5", "--backbone", "no_such_net", "--weights", files / "r18.pth",
                     "-o", files / "x.h5")
    assert_one_line_error(proc, "--backbone", "no_such_net")
    proc = run_alcli("embed", files / "colour.h5", "--backbone", "resnet18", "--weights", files / "r18.pth",
                     "--mc-samples", "2", "-o", files / "x.h5")
    assert_one_line_error(proc, "--mc-samples")
    help_text = run_alcli("embed", "--help", check=True).stdout.decode()
    assert "torch.save(torchvision.models.resnet18(weights='DEFAULT')" in help_text
