"""Run a trained model over data-set rows, batch by batch: penultimate features, softmax, MC-dropout
passes and BADGE gradient embeddings, streamed straight into an embeddings artifact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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


def grad_embedding(probs: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """BADGE: the last layer's loss gradient for the hypothesised label argmax p, (p − onehot) ⊗ features,
    flattened class-major (N × C·D)."""
    onehot = torch.nn.functional.one_hot(probs.argmax(1), probs.shape[1]).to(probs.dtype)
    return ((probs - onehot)[:, :, None] * feats[:, None, :]).reshape(feats.shape[0], -1)


@torch.no_grad()
def embed_into(writer: EmbeddingsWriter, net: models.Net, ckpt: Checkpoint, dataset: Dataset, rows: np.ndarray,
               opts: EmbedOptions, device: torch.device) -> None:
    """Write the rows' outputs block by block (rows in the order given)."""
    net.eval()
    gen = torch.Generator(device=device).manual_seed(opts.seed)
    plan = [(rows[start : start + opts.batch_size],) for start in range(0, rows.size, opts.batch_size)]
    data.size_cache(dataset.images, opts.batch_size, random=False)
    for (raw,) in console.progress(data.stream(dataset.images, plan, opts.workers), len(plan), f"embed {ckpt.arch}"):
        x = data.normalise(raw, ckpt.mean, ckpt.std)
        feats = net.features(x.to(device))
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
    attrs = {"checkpoint": ckpt.name, "dataset": dataset.name, "arch": ckpt.arch}
    if opts.mc_samples:
        attrs["mc_seed"] = int(opts.seed)
    parents = {"checkpoint": ckpt.sha256, "dataset": dataset.sha256}
    with stream_embeddings(path, rows, dataset.n, dims(net, ckpt.num_classes, opts), attrs, parents) as writer:
        embed_into(writer, net, ckpt, dataset, rows, opts, device)
