"""Weakly-supervised training: FixMatch on the unlabelled rows, and CEAL's pseudo-labels.

FixMatch (Sohn et al. 2020), `alcli train --semi-supervised fixmatch`: every step takes B labelled rows
(weakly augmented, cross-entropy on their labels) and μ·B unlabelled rows, each seen twice: a weak view
(the `--augment` shifts and colour flips) whose softmax gives a pseudo-label where its top probability
reaches the threshold τ, and a strong view (`alcli.learn.augment.strong`: RandAugment-style ops and Cutout)
trained towards that pseudo-label. Loss = CE(labelled) + λ · mean over the μ·B rows of mask · CE(strong,
pseudo-label). The three batches go through the model as one batch (as in FixMatch's reference code,
so batch norm sees them together). **An epoch is one pass over the unlabelled rows**
(ceil(U / (μ·B)) steps); the labelled rows are drawn from consecutive reshuffled passes over them, as many
as the steps need. The unlabelled rows are every row of the data set that is neither labelled nor
excluded (`--exclude`, e.g. the test split); their labels, if the file has any, are never read.

CEAL (Wang et al. 2016), `alcli train --pseudo-labels EMB.h5 --pseudo-threshold δ`: the rows of EMB whose
softmax entropy (nats, from `probs`) is below δ join the training set for this run only, labelled with
their argmax class (`pseudo_labels`); the data set is never written. The checkpoint's hparams record δ,
how many rows were added and the sha256 of their (row, class) pairs.

Determinism: every random draw (batch order, shifts, flips, RandAugment ops, Cutout) comes from the
recipe's seed through numpy/torch generators of its own, never the global RNGs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from alcli import console
from alcli.errors import AlcliError
from alcli.learn import augment, data
from alcli.learn import recipe as recipe_
from alcli.learn.recipe import batches

if TYPE_CHECKING:
    from alcli.artifacts.checkpoint import Checkpoint
    from alcli.artifacts.dataset import Dataset
    from alcli.learn import models
    from alcli.learn.recipe import Recipe

def steps_per_epoch(n_unlabeled: int, batch_size: int, mu: int) -> int:
    return max(1, math.ceil(n_unlabeled / (mu * batch_size)))


def labelled_plan(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """steps × batch_size positions into the labelled rows, from consecutive reshuffled passes."""
    need = steps * batch_size
    passes = [rng.permutation(n) for _ in range(-(-need // n))]
    return np.concatenate(passes)[:need].reshape(steps, batch_size)


def unlabelled_plan(n: int, batch_size: int, mu: int, epochs: int, rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Per epoch, a reshuffled pass over the unlabelled rows in batches of μ·B (the last may be smaller)."""
    return [batches(n, mu * batch_size, rng) for _ in range(epochs)]


def train(
    dataset: Dataset,
    rows: np.ndarray,
    labels_np: np.ndarray,
    unlabeled: np.ndarray,
    recipe: Recipe,
    *,
    labeled_count: int,
    on_epoch: Callable[[int, float], None] | None = None,
    stats: dict[str, Any] | None = None,
) -> tuple[models.Net, Checkpoint]:
    """FixMatch from scratch: `rows` with `labels_np`, plus the `unlabeled` rows (rows not in `rows`).
    `stats`, when given, receives per-epoch `mask_rate` (the share of unlabelled views above τ)."""
    import torch
    from torch import nn

    unlabeled = np.setdiff1d(np.asarray(unlabeled, np.int64), rows)
    if unlabeled.size < 2:
        raise AlcliError(f"needs at least 2 unlabelled rows, got {unlabeled.size} (every row is labelled or "
                         "excluded)", "--semi-supervised")
    recipe = dataclasses.replace(recipe, augment=True, extra=dict(recipe.extra))
    run = recipe_.setup(dataset, np.concatenate([rows, unlabeled]), recipe)
    net, opt, device = run.net, run.opt, run.device
    rng = np.random.default_rng(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    u_plan = unlabelled_plan(unlabeled.size, recipe.batch_size, recipe.mu, recipe.epochs, rng)
    total = sum(len(p) for p in u_plan)
    l_plan = labelled_plan(rows.size, recipe.batch_size, total, rng)
    labels = torch.from_numpy(labels_np)
    ce = nn.CrossEntropyLoss()
    losses, seconds, masks = np.zeros(recipe.epochs), np.zeros(recipe.epochs), np.zeros(recipe.epochs)
    t_epoch = time.perf_counter()
    steps = [(e, b) for e, epoch in enumerate(u_plan) for b in epoch]
    data.size_cache(dataset.images, (recipe.mu + 1) * recipe.batch_size * 2, random=True)
    reads = data.stream(dataset.images, [(rows[l_plan[i]], unlabeled[u]) for i, (_, u) in enumerate(steps)],
                        recipe.workers)
    progress = console.progress(zip(steps, reads, strict=True), total, f"train {recipe.arch} fixmatch")
    net.train()
    for step, ((epoch, upos), (raw_l, raw)) in enumerate(progress):
        lpos = l_plan[step]
        xl = data.normalise(raw_l, run.mean, run.std, augment=True, generator=gen)
        xw = data.normalise(raw, run.mean, run.std, augment=True, generator=gen)
        xs = data.normalise(augment.strong(raw, gen), run.mean, run.std, augment=True, generator=gen)
        x = torch.cat([xl, xw, xs]).to(device, non_blocking=True)
        y = labels[lpos].to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        logits = net(x)
        nl, nu = lpos.size, upos.size
        with torch.no_grad():
            conf, target = torch.softmax(logits[nl : nl + nu].detach(), dim=1).max(dim=1)
            mask = (conf >= recipe.threshold).float()
        unsup = (nn.functional.cross_entropy(logits[nl + nu :], target, reduction="none") * mask).mean()
        loss = ce(logits[:nl], y) + recipe.unlabeled_weight * unsup
        loss.backward()
        opt.step()
        losses[epoch] += float(loss.detach())
        masks[epoch] += float(mask.sum())
        if upos is u_plan[epoch][-1]:
            losses[epoch] /= len(u_plan[epoch])
            masks[epoch] /= unlabeled.size
            now = time.perf_counter()
            seconds[epoch], t_epoch = now - t_epoch, now
            recipe_.check_loss(float(losses[epoch]), epoch)
            if on_epoch is not None:
                on_epoch(epoch, float(losses[epoch]))
    if stats is not None:
        stats["mask_rate"] = masks.tolist()
        stats["unlabeled_count"] = int(unlabeled.size)
        stats["steps"] = total
    recipe.extra.update({"unlabeled_count": int(unlabeled.size), "steps": total})
    return net, run.checkpoint(dataset, recipe, losses, seconds, labeled_count)


@dataclass
class PseudoLabels:
    """CEAL's high-confidence rows: data-set rows and their argmax classes, for one training run."""

    rows: np.ndarray
    labels: np.ndarray
    threshold: float
    source: str = ""

    def digest(self) -> str:
        """sha256 of the (row, class) pairs, as little-endian int64 rows then classes."""
        h = hashlib.sha256(np.asarray(self.rows, "<i8").tobytes())
        h.update(np.asarray(self.labels, "<i8").tobytes())
        return h.hexdigest()

    def hparams(self) -> dict[str, Any]:
        return {"pseudo_threshold": self.threshold, "pseudo_count": int(self.rows.size),
                "pseudo_sha256": self.digest(), "pseudo_source": self.source}


def pseudo_labels(probs: np.ndarray, indices: np.ndarray, threshold: float, skip: np.ndarray,
                  source: str = "") -> PseudoLabels:
    """Rows `indices` whose softmax entropy (nats) is < `threshold`, minus the rows in `skip` (labelled or
    excluded), with their argmax classes (lowest class on ties). Sorted by row."""
    from alcli.selection.common import entropy

    if not threshold >= 0:
        raise AlcliError(f"must be ≥ 0, got {threshold}", "--pseudo-threshold")
    ent = entropy(np.asarray(probs, np.float64))
    keep = (ent < threshold) & ~np.isin(indices, skip)
    rows = np.asarray(indices[keep], np.int64)
    labels = np.argmax(probs[keep], axis=1).astype(np.int64)
    order = np.argsort(rows, kind="stable")
    return PseudoLabels(rows[order], labels[order], float(threshold), source)


def read_pseudo_labels(path: str, threshold: float, pool_size: int, num_classes: int,
                       skip: np.ndarray) -> PseudoLabels:
    """CEAL's pseudo-labels from an embeddings artifact with `probs` (see `pseudo_labels`)."""
    from alcli.artifacts.embeddings import read_embeddings

    emb = read_embeddings(path, load=("probs",))
    if emb.pool_size != pool_size:
        raise AlcliError(f"is for a pool of {emb.pool_size} rows, the data set has {pool_size}", emb.name)
    if emb.probs is None:
        raise AlcliError("has no 'probs' (softmax outputs): write it with `alcli embed`", emb.name)
    if emb.probs.shape[1] != num_classes:
        raise AlcliError(f"'probs' has {emb.probs.shape[1]} classes, the data set has {num_classes}", emb.name)
    return pseudo_labels(emb.probs, emb.indices, threshold, skip, source=emb.sha256)
