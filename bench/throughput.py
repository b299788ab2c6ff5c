"""Benchmark: training and embedding throughput (images/second) of every architecture.

Prints one JSON object: per architecture, train (supervised, and FixMatch semi-supervised as `train_semi_*`
with its ratio to supervised) and embed images/s, and each relative to the small CNN measured in the same
run (so numbers from different machines or loads can be compared as ratios).
Inputs are real images: MNIST 28×28 grey for `small`, CIFAR-10 32×32 RGB for vgg16/resnet18 (random
uint8 images of that shape when ../shared/data is absent). Each measurement follows a warm-up step.

    .venv/bin/python bench/throughput.py                 # CPU: reduced counts, about a minute
    .venv/bin/python bench/throughput.py --scale 4       # 4× the images
    .venv/bin/python bench/throughput.py --device cuda   # on a GPU (the default when one is visible)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alcli.artifacts.dataset import Dataset
from alcli.learn import data, embedding, models, training

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-test.h5"
# images (train, embed) per architecture on CPU; a GPU gets 20× as many
COUNTS = {"small": (2000, 5000), "resnet18": (64, 256), "vgg16": (64, 256)}


def dataset_for(arch: str) -> Dataset:
    if arch == "small":
        return data.load(str(ROOT / "samples" / "mnist5k.h5"))
    if CIFAR.exists():
        return data.load(str(CIFAR))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5000, 32, 32, 3), dtype=np.uint8)
    return Dataset(images, rng.integers(0, 10, 5000), [str(c) for c in range(10)], name="random")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(arch: str, device: torch.device, n_train: int, n_embed: int, batch: int) -> dict[str, float]:
    ds = dataset_for(arch)
    rng = np.random.default_rng(0)
    rows_train = np.sort(rng.choice(ds.n, min(n_train, ds.n), replace=False))
    rows_embed = np.arange(min(n_embed, ds.n), dtype=np.int64)
    recipe = training.Recipe(arch=arch, epochs=1, batch_size=batch, device=device.type)
    training.train(ds, rows_train[: 2 * batch], recipe)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    net, ckpt = training.train(ds, rows_train, recipe)
    sync(device)
    train_s = time.perf_counter() - t0
    semi = measure_semi(ds, rows_train, recipe, device)
    net.eval()
    opts = embedding.EmbedOptions(batch_size=256)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "e.h5")
        embedding.embed(out, net, ckpt, ds, rows_embed[:256], opts, device)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        embedding.embed(out, net, ckpt, ds, rows_embed, opts, device)
        sync(device)
        embed_s = time.perf_counter() - t0
    return {
        "input": "x".join(map(str, data.input_shape(ds.images))),
        "train_images": int(rows_train.size),
        "train_seconds": round(train_s, 3),
        "train_images_per_s": round(rows_train.size / train_s, 1),
        **semi,
        "embed_images": int(rows_embed.size),
        "embed_seconds": round(embed_s, 3),
        "embed_images_per_s": round(rows_embed.size / embed_s, 1),
    }


def measure_semi(ds: Dataset, rows: np.ndarray, recipe: training.Recipe, device: torch.device) -> dict[str, float]:
    """FixMatch (μ = 7) over as many images as the supervised run: 1/8 labelled, 7/8 unlabelled. Images/s
    counts each image once, though an unlabelled one goes through the model twice (weak and strong view)
    and is strongly augmented on the CPU first."""
    semi = dataclasses.replace(recipe, semi_supervised="fixmatch")
    n_lab = max(2 * recipe.batch_size, rows.size // (1 + semi.mu))
    lab, unl = rows[:n_lab], rows[n_lab:]
    warm = unl[: semi.mu * recipe.batch_size]
    training.train(ds, lab, semi, unlabeled=warm)  # warm-up (and the augmentation ops' first calls)
    sync(device)
    t0 = time.perf_counter()
    _, ckpt = training.train(ds, lab, semi, unlabeled=unl)
    sync(device)
    secs = time.perf_counter() - t0
    images = int(ckpt.hparams["steps"]) * recipe.batch_size + int(unl.size)
    return {
        "train_semi_images": images,
        "train_semi_seconds": round(secs, 3),
        "train_semi_images_per_s": round(images / secs, 1),
    }


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--archs", default="small,resnet18,vgg16")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the image counts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = models.resolve_device(args.device)
    gpu = 20 if device.type == "cuda" else 1
    results = {}
    for arch in args.archs.split(","):
        n_train, n_embed = (max(int(c * args.scale * gpu), 2 * args.batch_size) for c in COUNTS[arch])
        results[arch] = measure(arch, device, n_train, n_embed, args.batch_size)
    base = results.get("small")
    if base:
        for res in results.values():
            res["train_vs_small"] = round(res["train_images_per_s"] / base["train_images_per_s"], 4)
            res["embed_vs_small"] = round(res["embed_images_per_s"] / base["embed_images_per_s"], 4)
            res["train_semi_vs_supervised"] = round(res["train_semi_images_per_s"] / res["train_images_per_s"], 4)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(json.dumps({
        "benchmark": "throughput",
        "device": device.type,
        "device_name": name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "results": results,
    }, sort_keys=True))  # fmt: skip


if __name__ == "__main__":
    main()
