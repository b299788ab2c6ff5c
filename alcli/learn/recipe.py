"""A training recipe and what every training loop starts from: device, normalisation, seeded model, optimizer.

Shared by supervised training (alcli.learn.training) and FixMatch (alcli.learn.semisupervised).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from alcli.artifacts.checkpoint import Checkpoint
from alcli.artifacts.dataset import Dataset
from alcli.errors import AlcliError
from alcli.learn import augment, backbones, data, models

WEAK_SHIFT = 2  # pixels, the `--augment` shift (alcli.learn.data)


def fixmatch_hparams(recipe: Recipe) -> dict[str, Any]:
    """FixMatch's hyper-parameters as recorded in the checkpoint."""
    return {
        "threshold": recipe.threshold, "mu": recipe.mu, "unlabeled_weight": recipe.unlabeled_weight,
        "epoch_unit": "pass over the unlabelled rows", "weak_augment": f"shift ≤{WEAK_SHIFT}px, flip if colour",
        "strong_ops_per_image": augment.OPS_PER_IMAGE, "strong_magnitude": "uniform [0, 1] per op",
        "cutout_fraction": augment.CUTOUT_FRACTION, "cutout_fill": augment.CUTOUT_FILL,
    }  # fmt: skip


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
    workers: int = data.WORKERS  # processes reading batches ahead (0: in the training process); no effect on weights
    weights: str = ""  # a `torchvision.<name>` arch: the local file of its pretrained weights
    freeze_backbone: bool = False  # train the head only (a linear probe)
    image_size: int = backbones.DEFAULT_IMAGE_SIZE
    extra: dict[str, Any] = field(default_factory=dict)

    def hparams(self, device: torch.device) -> dict[str, Any]:
        semi: dict[str, Any] = {"semi_supervised": self.semi_supervised}
        if self.semi_supervised != "none":
            semi.update(fixmatch_hparams(self))
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "optimizer": self.optimizer,
                "augment": self.augment, "seed": self.seed, "device": device.type,
                "threads": torch.get_num_threads() if device.type == "cpu" else 0, **semi, **self.extra}


def check_recipe(recipe: Recipe) -> None:
    models.check_arch(recipe.arch, "--backbone" if backbones.is_backbone_arch(recipe.arch) else "--arch")
    if backbones.is_backbone_arch(recipe.arch) and not recipe.weights:
        raise AlcliError("needs --weights FILE (a local state dict: nothing is downloaded)", "--backbone")
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
    if recipe.workers < 0:
        raise AlcliError(f"must be 0 (read in the training process) or more, got {recipe.workers}", "--workers")
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
    extra: dict[str, Any] = field(default_factory=dict)

    def checkpoint(self, dataset: Dataset, recipe: Recipe, losses: np.ndarray, seconds: np.ndarray,
                   labeled_count: int) -> Checkpoint:
        return Checkpoint(
            arch=recipe.arch, state=models.state_arrays(self.net), mean=self.mean, std=self.std,
            input_shape=self.shape, num_classes=dataset.num_classes, class_names=list(dataset.class_names),
            hparams={**recipe.hparams(self.device), **self.extra}, loss=losses, epoch_seconds=seconds,
            labeled_count=labeled_count, seconds=time.perf_counter() - self.t_start,
        )  # fmt: skip


def setup(dataset: Dataset, stats_rows: np.ndarray, recipe: Recipe) -> Setup:
    """Resolve the device, compute the normalisation over `stats_rows`, build the seeded model."""
    device = models.resolve_device(recipe.device)
    deterministic(device)
    shape = data.input_shape(dataset.images)
    if backbones.is_backbone_arch(recipe.arch):
        return _setup_backbone(dataset, recipe, device, shape)
    mean, std = data.channel_stats(dataset.images, stats_rows)
    net = models.build(recipe.arch, shape, dataset.num_classes, seed=recipe.seed).to(device)
    opt = make_optimizer(recipe.optimizer, net.parameters(), recipe.lr)
    return Setup(device, shape, mean, std, net, opt, time.perf_counter())


def _setup_backbone(dataset: Dataset, recipe: Recipe, device: torch.device, shape: tuple[int, int, int]) -> Setup:
    """A pretrained torchvision trunk (its weights from recipe.weights) and a fresh seeded head; inputs are
    only scaled to [0, 1] (mean 0, std 1): the trunk's own first layer applies ImageNet's normalisation."""
    t_start = time.perf_counter()
    name = recipe.arch.removeprefix(backbones.PREFIX)
    body, dim, sha = backbones.pretrained(name, recipe.weights, recipe.image_size)
    net = models.build(recipe.arch, shape, dataset.num_classes, seed=recipe.seed, image_size=recipe.image_size,
                       trunk=(body, dim))
    net.frozen = recipe.freeze_backbone
    if recipe.freeze_backbone:
        net.trunk.requires_grad_(False)
    net = net.to(device)
    params = net.head.parameters() if recipe.freeze_backbone else net.parameters()
    opt = make_optimizer(recipe.optimizer, params, recipe.lr)
    extra = backbones.hparams(name, recipe.weights, sha, recipe.image_size, recipe.freeze_backbone)
    chans = shape[0]
    return Setup(device, shape, np.zeros(chans, np.float32), np.ones(chans, np.float32), net, opt, t_start, extra)


def check_loss(loss: float, epoch: int) -> None:
    if not np.isfinite(loss):
        raise AlcliError(f"training diverged (loss {loss} in epoch {epoch + 1}): lower it", "--lr")


