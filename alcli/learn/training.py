"""Train a model from scratch on the labelled rows of a data set, reproducibly, and (re)load checkpoints.

The recipe and what every training loop starts from live in alcli.learn.recipe; FixMatch in
alcli.learn.semisupervised, which this module calls.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from alcli import console
from alcli.artifacts.checkpoint import Checkpoint, read_checkpoint
from alcli.artifacts.dataset import Dataset
from alcli.errors import AlcliError
from alcli.learn import backbones, data, models, semisupervised
from alcli.learn.recipe import Recipe, batches, check_loss, check_recipe, setup

if TYPE_CHECKING:
    from alcli.learn.semisupervised import PseudoLabels

__all__ = ["Recipe", "check_compatible", "check_loss", "check_recipe", "load_model", "setup", "train"]


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
    steps = [(e, b) for e, epoch in enumerate(plan) for b in epoch]
    data.size_cache(dataset.images, 2 * recipe.batch_size, random=True)
    reads = data.stream(dataset.images, [(rows[pos],) for _, pos in steps], recipe.workers)
    sums = np.zeros(recipe.epochs)
    t_epoch = time.perf_counter()
    net.train()
    for (epoch, pos), (raw,) in console.progress(zip(steps, reads, strict=True), total, f"train {recipe.arch}"):
        x = data.normalise(raw, run.mean, run.std, augment=recipe.augment, generator=gen)
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
    net = models.build(ckpt.arch, ckpt.input_shape, ckpt.num_classes, image_size=_image_size(ckpt), init=False)
    models.load_state(net, ckpt.state)
    net.eval()
    return net.to(models.resolve_device(device)), ckpt


def seen_size(ckpt: Checkpoint, dataset: Dataset) -> tuple[int, int]:
    """(height, width) of the images as the checkpoint's network sees them: a fine-tuned backbone resizes
    them to its `image_size`, the other architectures take the data set's as they are."""
    if backbones.is_backbone_arch(ckpt.arch):
        side = _image_size(ckpt)
        return side, side
    _, height, width = data.input_shape(dataset.images)
    return height, width


def _image_size(ckpt: Checkpoint) -> int:
    size = ckpt.hparams.get("image_size", backbones.DEFAULT_IMAGE_SIZE)
    if not isinstance(size, int) or size < 1:
        raise AlcliError(f"hparams 'image_size' {size!r} is not a positive integer", ckpt.name)
    return size


def check_compatible(ckpt: Checkpoint, dataset: Dataset) -> None:
    """The data set's images must have the shape the model was trained on."""
    shape = data.input_shape(dataset.images)
    if shape != tuple(ckpt.input_shape):
        raise AlcliError(
            f"images are {'×'.join(map(str, shape))} (C×H×W) but {ckpt.name} was trained on "
            f"{'×'.join(map(str, ckpt.input_shape))}",
            dataset.name,
        )
