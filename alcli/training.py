"""Train a model from scratch on the labelled rows of a data set, reproducibly, and (re)load checkpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from alcli import console, data, models
from alcli.artifacts.checkpoint import Checkpoint, read_checkpoint
from alcli.artifacts.dataset import Dataset
from alcli.errors import AlcliError

OPTIMIZERS = ("rmsprop", "adam", "sgd")


@dataclass
class Recipe:
    arch: str = "small"
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "rmsprop"
    augment: bool = False
    seed: int = 0
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def hparams(self, device: torch.device) -> dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "optimizer": self.optimizer,
                "augment": self.augment, "seed": self.seed, "device": device.type,
                "threads": torch.get_num_threads() if device.type == "cpu" else 0, **self.extra}


def check_recipe(recipe: Recipe) -> None:
    models.check_arch(recipe.arch)
    if recipe.epochs < 1:
        raise AlcliError(f"must be at least 1, got {recipe.epochs}", "--epochs")
    if recipe.batch_size < 1:
        raise AlcliError(f"must be at least 1, got {recipe.batch_size}", "--batch-size")
    if not recipe.lr > 0:
        raise AlcliError(f"must be positive, got {recipe.lr}", "--lr")
    if recipe.optimizer not in OPTIMIZERS:
        raise AlcliError(f"unknown optimizer {recipe.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}",
                         "--optimizer")


def make_optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)


def deterministic(device: torch.device) -> None:
    """Same seed, same device, same thread count → same weights (CPU; CUDA is best effort)."""
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Positions 0..n-1 in batches (shuffled when `rng` is given). A last batch of one joins the one
    before it, so batch norm never sees a single sample."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    out = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(out) > 1 and out[-1].size == 1:
        out[-2] = np.concatenate([out[-2], out.pop()])
    return out


def train(
    dataset: Dataset,
    rows: np.ndarray,
    recipe: Recipe,
    *,
    source: str = "--labeled",
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[models.Net, Checkpoint]:
    """Train recipe.arch from scratch on dataset rows `rows`; return the model and its checkpoint."""
    check_recipe(recipe)
    labels_np = data.labels_for_training(dataset, rows, source)
    if rows.size < 2:
        raise AlcliError(f"needs at least 2 labelled rows to train, got {rows.size}", source)
    device = models.resolve_device(recipe.device)
    deterministic(device)
    shape = data.input_shape(dataset.images)
    mean, std = data.channel_stats(dataset.images, rows)
    net = models.build(recipe.arch, shape, dataset.num_classes, seed=recipe.seed).to(device)
    opt = make_optimizer(recipe.optimizer, net.parameters(), recipe.lr)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    labels = torch.from_numpy(labels_np)
    plan = [batches(rows.size, recipe.batch_size, rng) for _ in range(recipe.epochs)]
    total = sum(len(p) for p in plan)
    losses, seconds = np.zeros(recipe.epochs), np.zeros(recipe.epochs)
    t_start = time.perf_counter()
    steps = ((e, b) for e, epoch in enumerate(plan) for b in epoch)
    sums = np.zeros(recipe.epochs)
    t_epoch = time.perf_counter()
    net.train()
    for epoch, pos in console.progress(steps, total, f"train {recipe.arch}"):
        x = data.batch_tensor(dataset.images, rows[pos], mean, std, augment=recipe.augment, generator=gen)
        y = labels[pos]
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        sums[epoch] += float(loss.detach()) * pos.size
        if pos is plan[epoch][-1]:
            losses[epoch] = sums[epoch] / rows.size
            now = time.perf_counter()
            seconds[epoch], t_epoch = now - t_epoch, now
            if not np.isfinite(losses[epoch]):
                raise AlcliError(f"training diverged (loss {losses[epoch]} in epoch {epoch + 1}): lower it",
                                 "--lr")
            if on_epoch is not None:
                on_epoch(epoch, float(losses[epoch]))
    ckpt = Checkpoint(
        arch=recipe.arch, state=models.state_arrays(net), mean=mean, std=std, input_shape=shape,
        num_classes=dataset.num_classes, class_names=list(dataset.class_names), hparams=recipe.hparams(device),
        loss=losses, epoch_seconds=seconds, labeled_count=int(rows.size), seconds=time.perf_counter() - t_start,
    )  # fmt: skip
    return net, ckpt


def load_model(path: str, device: str = "auto") -> tuple[models.Net, Checkpoint]:
    """A checkpoint's model, in eval mode on `device`. Reads arrays only (no torch.load, no pickle)."""
    ckpt = read_checkpoint(path, models.expected_tensors)
    net = models.build(ckpt.arch, ckpt.input_shape, ckpt.num_classes)
    models.load_state(net, ckpt.state)
    net.eval()
    return net.to(models.resolve_device(device)), ckpt


def check_compatible(ckpt: Checkpoint, dataset: Dataset) -> None:
    """The data set's images must have the shape the model was trained on."""
    shape = data.input_shape(dataset.images)
    if shape != tuple(ckpt.input_shape):
        raise AlcliError(
            f"images are {'×'.join(map(str, shape))} (C×H×W) but {ckpt.name} was trained on "
            f"{'×'.join(map(str, ckpt.input_shape))}",
            dataset.name,
        )
