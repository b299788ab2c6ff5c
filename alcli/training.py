"""Train a model from scratch on the labelled rows of a data set, reproducibly, and (re)load checkpoints."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from alcli import console, data, models
from alcli.artifacts.checkpoint import Checkpoint, read_checkpoint
from alcli.artifacts.dataset import Dataset
from alcli.errors import AlcliError

if TYPE_CHECKING:
    from alcli.semisupervised import PseudoLabels

OPTIMIZERS = ("rmsprop", "adam", "sgd")
SEMI_SUPERVISED = ("none", "fixmatch")


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
    semi_supervised: str = "none"
    threshold: float = 0.95
    mu: int = 7
    unlabeled_weight: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def hparams(self, device: torch.device) -> dict[str, Any]:
        semi: dict[str, Any] = {"semi_supervised": self.semi_supervised}
        if self.semi_supervised != "none":
            from alcli import semisupervised

            semi.update(semisupervised.hparams(self))
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "optimizer": self.optimizer,
                "augment": self.augment, "seed": self.seed, "device": device.type,
                "threads": torch.get_num_threads() if device.type == "cpu" else 0, **semi, **self.extra}


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
    if recipe.semi_supervised not in SEMI_SUPERVISED:
        raise AlcliError(f"unknown method {recipe.semi_supervised!r}; choose one of {', '.join(SEMI_SUPERVISED)}",
                         "--semi-supervised")
    if not 0.0 <= recipe.threshold <= 1.0:
        raise AlcliError(f"must be in [0, 1], got {recipe.threshold}", "--threshold")
    if recipe.mu < 1:
        raise AlcliError(f"must be at least 1, got {recipe.mu}", "--mu")
    if not (recipe.unlabeled_weight >= 0 and np.isfinite(recipe.unlabeled_weight)):
        raise AlcliError(f"must be a finite number ≥ 0, got {recipe.unlabeled_weight}", "--unlabeled-weight")


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
        last = out.pop()
        out[-1] = np.concatenate([out[-1], last])
    return out


@dataclass
class Setup:
    """What every training loop starts from: device, input shape, normalisation, model, optimizer."""

    device: torch.device
    shape: tuple[int, int, int]
    mean: np.ndarray
    std: np.ndarray
    net: models.Net
    opt: torch.optim.Optimizer
    t_start: float

    def checkpoint(self, dataset: Dataset, recipe: Recipe, losses: np.ndarray, seconds: np.ndarray,
                   labeled_count: int) -> Checkpoint:
        return Checkpoint(
            arch=recipe.arch, state=models.state_arrays(self.net), mean=self.mean, std=self.std,
            input_shape=self.shape, num_classes=dataset.num_classes, class_names=list(dataset.class_names),
            hparams=recipe.hparams(self.device), loss=losses, epoch_seconds=seconds, labeled_count=labeled_count,
            seconds=time.perf_counter() - self.t_start,
        )  # fmt: skip


def setup(dataset: Dataset, stats_rows: np.ndarray, recipe: Recipe) -> Setup:
    """Resolve the device, compute the normalisation over `stats_rows`, build the seeded model."""
    device = models.resolve_device(recipe.device)
    deterministic(device)
    shape = data.input_shape(dataset.images)
    mean, std = data.channel_stats(dataset.images, stats_rows)
    net = models.build(recipe.arch, shape, dataset.num_classes, seed=recipe.seed).to(device)
    opt = make_optimizer(recipe.optimizer, net.parameters(), recipe.lr)
    return Setup(device, shape, mean, std, net, opt, time.perf_counter())


def check_loss(loss: float, epoch: int) -> None:
    if not np.isfinite(loss):
        raise AlcliError(f"training diverged (loss {loss} in epoch {epoch + 1}): lower it", "--lr")


def train(
    dataset: Dataset,
    rows: np.ndarray,
    recipe: Recipe,
    *,
    source: str = "--labeled",
    on_epoch: Callable[[int, float], None] | None = None,
    pseudo: PseudoLabels | None = None,
    unlabeled: np.ndarray | None = None,
    stats: dict[str, Any] | None = None,
) -> tuple[models.Net, Checkpoint]:
    """Train recipe.arch from scratch on dataset rows `rows` (plus `pseudo`-labelled rows, CEAL); with
    recipe.semi_supervised also on the `unlabeled` rows (`stats` receives FixMatch's per-epoch mask rate).
    Return the model and its checkpoint."""
    check_recipe(recipe)
    labels_np = data.labels_for_training(dataset, rows, source)
    if rows.size < 2:
        raise AlcliError(f"needs at least 2 labelled rows to train, got {rows.size}", source)
    labeled_count = int(rows.size)
    if pseudo is not None:
        recipe = dataclasses.replace(recipe, extra={**recipe.extra, **pseudo.hparams()})
        rows = np.concatenate([rows, pseudo.rows])
        labels_np = np.concatenate([labels_np, pseudo.labels])
    if recipe.semi_supervised != "none":
        from alcli import semisupervised

        if unlabeled is None:
            raise AlcliError("semi-supervised training needs unlabelled rows", "--semi-supervised")
        return semisupervised.train(dataset, rows, labels_np, unlabeled, recipe, labeled_count=labeled_count,
                                    on_epoch=on_epoch, stats=stats)
    run = setup(dataset, rows, recipe)
    net, opt, device = run.net, run.opt, run.device
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    labels = torch.from_numpy(labels_np)
    plan = [batches(rows.size, recipe.batch_size, rng) for _ in range(recipe.epochs)]
    total = sum(len(p) for p in plan)
    losses, seconds = np.zeros(recipe.epochs), np.zeros(recipe.epochs)
    steps = ((e, b) for e, epoch in enumerate(plan) for b in epoch)
    sums = np.zeros(recipe.epochs)
    t_epoch = time.perf_counter()
    net.train()
    for epoch, pos in console.progress(steps, total, f"train {recipe.arch}"):
        x = data.batch_tensor(dataset.images, rows[pos], run.mean, run.std, augment=recipe.augment, generator=gen)
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
            check_loss(float(losses[epoch]), epoch)
            if on_epoch is not None:
                on_epoch(epoch, float(losses[epoch]))
    return net, run.checkpoint(dataset, recipe, losses, seconds, labeled_count)


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
