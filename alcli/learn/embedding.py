"""Run a trained model over data-set rows, batch by batch: penultimate features, softmax, MC-dropout
passes and BADGE gradient embeddings, streamed straight into an embeddings artifact; or a pretrained
torchvision trunk's features alone (`embed_features`: ImageNet's classes are not the pool's, so no probs).

`precision` bf16/fp16 runs the network under torch.autocast (fp16 on CUDA only; bf16 also on CPU) and, on
CUDA, in channels_last memory format; outputs are written as float32 either way. A pretrained trunk runs
channels_last on the CPU too: oneDNN's convolutions are faster so (ResNet-18, 2 threads: 55 against 43
images/s), which is also the layout a plain loop gets from `images.permute(0, 3, 1, 2)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from alcli import console
from alcli.artifacts.checkpoint import Checkpoint
from alcli.artifacts.dataset import Dataset
from alcli.artifacts.embeddings import EmbeddingsWriter, stream_embeddings
from alcli.errors import AlcliError
from alcli.learn import data, models


@dataclass
class EmbedOptions:
    batch_size: int = 256
    mc_samples: int = 0
    grad_embedding: bool = False
    seed: int = 0
    workers: int = data.WORKERS  # processes reading batches ahead (0: in this process)
    precision: str = "fp32"


PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}

# The default batch of an inference pass holds as many pixels as 32 images at ImageNet's 224×224: memory is the
# batch's activations, which grow with its pixels (ResNet-18 at 224², one process's peak RSS: batch 32 1.14 GB,
# 64 1.41 GB, 256 2.79 GB), while the speed on a CPU barely moves with the batch.
AUTO_BATCH_PIXELS = 32 * 224 * 224
AUTO_BATCH_MAX = 256


def auto_batch_size(height: int, width: int) -> int:
    """The default batch for images that reach the network as height×width: 256 for digits and CIFAR, 32 at
    224², 8 at 448², never below 1."""
    return max(1, min(AUTO_BATCH_MAX, AUTO_BATCH_PIXELS // max(1, height * width)))


def dims(net: models.Net, num_classes: int, opts: EmbedOptions) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {"features": (net.feature_dim,), "probs": (num_classes,)}
    if opts.mc_samples:
        out["mc_probs"] = (opts.mc_samples, num_classes)
    if opts.grad_embedding:
        out["grad_features"] = (num_classes * net.feature_dim,)
    return out


def check_options(opts: EmbedOptions) -> None:
    if opts.batch_size < 1:
        raise AlcliError(f"must be at least 1, got {opts.batch_size}", "--batch-size")
    if opts.mc_samples < 0:
        raise AlcliError(f"must be 0 (off) or more, got {opts.mc_samples}", "--mc-samples")
    if opts.workers < 0:
        raise AlcliError(f"must be 0 (read in this process) or more, got {opts.workers}", "--workers")
    if opts.precision not in PRECISIONS:
        raise AlcliError(f"unknown precision {opts.precision!r}; choose one of {', '.join(PRECISIONS)}", "--precision")


def check_device(opts: EmbedOptions, device: torch.device) -> None:
    if opts.precision == "fp16" and device.type != "cuda":
        raise AlcliError("fp16 needs a CUDA device (use bf16 on the CPU)", "--precision")


def channels_last(opts: EmbedOptions, device: torch.device, backbone: bool = False) -> bool:
    """channels_last when autocasting on CUDA (what tensor cores want), and for a pretrained trunk anywhere."""
    return backbone or (device.type == "cuda" and opts.precision != "fp32")


def prepare(net: nn.Module, opts: EmbedOptions, device: torch.device, backbone: bool = False) -> nn.Module:
    """Eval mode, in the memory format `channels_last` chooses."""
    net.eval()
    if channels_last(opts, device, backbone):
        net = net.to(memory_format=torch.channels_last)
    return net


def autocast(opts: EmbedOptions, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    dtype = PRECISIONS[opts.precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def inputs(dataset: Dataset, rows: np.ndarray, mean: np.ndarray, std: np.ndarray, opts: EmbedOptions,
           device: torch.device, label: str, backbone: bool = False) -> Iterator[torch.Tensor]:
    """The rows' normalised batches on `device`, in order, read ahead from the file."""
    plan = [(rows[start : start + opts.batch_size],) for start in range(0, rows.size, opts.batch_size)]
    data.size_cache(dataset.images, opts.batch_size, random=False)
    last = channels_last(opts, device, backbone)
    for (raw,) in console.progress(data.stream(dataset.images, plan, opts.workers), len(plan), label):
        if last:  # reorder the uint8 bytes, not the 4× larger floats made from them
            raw = raw.contiguous(memory_format=torch.channels_last)
        yield data.normalise(raw, mean, std).to(device, non_blocking=True)


def grad_embedding(probs: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """BADGE: the last layer's loss gradient for the hypothesised label argmax p, (p − onehot) ⊗ features,
    flattened class-major (N × C·D)."""
    onehot = torch.nn.functional.one_hot(probs.argmax(1), probs.shape[1]).to(probs.dtype)
    return ((probs - onehot)[:, :, None] * feats[:, None, :]).reshape(feats.shape[0], -1)


@torch.no_grad()
def embed_into(writer: EmbeddingsWriter, net: models.Net, ckpt: Checkpoint, dataset: Dataset, rows: np.ndarray,
               opts: EmbedOptions, device: torch.device) -> None:
    """Write the rows' outputs block by block (rows in the order given)."""
    net = prepare(net, opts, device)
    gen = torch.Generator(device=device).manual_seed(opts.seed)
    for x in inputs(dataset, rows, ckpt.mean, ckpt.std, opts, device, f"embed {ckpt.arch}"):
        with autocast(opts, device):
            feats = net.features(x).float()
        probs = torch.softmax(net.classify(feats), dim=1)
        extra = {"probs": probs.cpu().numpy()}
        if opts.mc_samples:
            extra["mc_probs"] = mc_probs(net, feats, opts.mc_samples, gen).cpu().numpy()
        if opts.grad_embedding:
            extra["grad_features"] = grad_embedding(probs, feats).cpu().numpy()
        writer.write(feats.cpu().numpy(), **extra)


def mc_probs(net: models.Net, feats: torch.Tensor, samples: int, gen: torch.Generator) -> torch.Tensor:
    """T forward passes with dropout on. Dropout sits only before the classifier, so each pass reuses the
    penultimate features; the masks come from `gen` (reproducible)."""
    head = net.head
    drop, linear = head[0], head[1]
    keep = 1.0 - drop.p
    out = []
    for _ in range(samples):
        mask = (torch.rand(feats.shape, generator=gen, device=feats.device) < keep).to(feats.dtype) / keep
        out.append(torch.softmax(linear(feats * mask), dim=1))
    return torch.stack(out)


def embed(path: str, net: models.Net, ckpt: Checkpoint, dataset: Dataset, rows: np.ndarray, opts: EmbedOptions,
          device: torch.device) -> None:
    """Stream the embeddings artifact for `rows` (sorted data-set rows) to `path` (`-` = stdout)."""
    check_options(opts)
    check_device(opts, device)
    attrs = {"checkpoint": ckpt.name, "dataset": dataset.name, "arch": ckpt.arch}
    if opts.mc_samples:
        attrs["mc_seed"] = int(opts.seed)
    parents = {"checkpoint": ckpt.sha256, "dataset": dataset.sha256}
    with stream_embeddings(path, rows, dataset.n, dims(net, ckpt.num_classes, opts), attrs, parents) as writer:
        embed_into(writer, net, ckpt, dataset, rows, opts, device)


@torch.no_grad()
def embed_features(path: str, trunk: nn.Module, dim: int, dataset: Dataset, rows: np.ndarray, opts: EmbedOptions,
                   device: torch.device, attrs: dict[str, Any], parents: dict[str, str]) -> None:
    """Stream `trunk`'s features (no probs) of `rows` to `path`; inputs in [0, 1] (the trunk normalises)."""
    check_options(opts)
    check_device(opts, device)
    trunk = prepare(trunk.to(device), opts, device, backbone=True)
    chans = data.input_shape(dataset.images)[0]
    zero, one = np.zeros(chans, np.float32), np.ones(chans, np.float32)
    with stream_embeddings(path, rows, dataset.n, {"features": (dim,)}, attrs, parents) as writer:
        for x in inputs(dataset, rows, zero, one, opts, device, f"embed {attrs.get('arch', '')}", backbone=True):
            with autocast(opts, device):
                feats = trunk(x)
            writer.write(feats.float().cpu().numpy())
