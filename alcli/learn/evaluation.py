"""Accuracy, per-class accuracy, mean loss and the confusion matrix of a checkpoint on test rows."""

from __future__ import annotations

import numpy as np
import torch

from alcli import console
from alcli.artifacts.checkpoint import Checkpoint
from alcli.artifacts.dataset import Dataset
from alcli.artifacts.report import Report
from alcli.errors import AlcliError
from alcli.learn import data, models


@torch.no_grad()
def evaluate(net: models.Net, ckpt: Checkpoint, dataset: Dataset, rows: np.ndarray, *, batch_size: int = 512,
             device: torch.device | None = None, source: str = "TEST_DATA", workers: int = data.WORKERS) -> Report:
    """Score `net` on dataset rows `rows`; every row needs a label (not -1)."""
    labels = dataset.labels[rows]
    if np.any(labels < 0):
        row = int(rows[labels < 0][0])
        raise AlcliError(f"test row {row} has label -1 (not labelled): cannot score it", source)
    if dataset.num_classes != ckpt.num_classes:
        raise AlcliError(f"has {dataset.num_classes} classes, {ckpt.name} was trained for {ckpt.num_classes}",
                         dataset.name)
    device = device or torch.device("cpu")
    net.eval()
    c = ckpt.num_classes
    confusion = np.zeros((c, c), np.int64)
    loss_sum = 0.0
    starts = range(0, rows.size, batch_size)
    data.size_cache(dataset.images, batch_size, random=False)
    reads = data.stream(dataset.images, [(rows[start : start + batch_size],) for start in starts], workers)
    for start, (raw,) in console.progress(zip(starts, reads, strict=True), len(starts), "evaluate"):
        pos = slice(start, start + batch_size)
        x = data.normalise(raw, ckpt.mean, ckpt.std).to(device)
        y = torch.from_numpy(labels[pos]).to(device)
        logits = net(x)
        loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        pred = logits.argmax(1).cpu().numpy()
        np.add.at(confusion, (labels[pos], pred), 1)
    per_class_total = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(per_class_total > 0, np.diag(confusion) / per_class_total, np.nan)
    n = int(rows.size)
    attrs = {
        "arch": ckpt.arch,
        "checkpoint": ckpt.name,
        "dataset": dataset.name,
        "method": ckpt.labeled_method or None,
        "round": ckpt.labeled_round if ckpt.labeled_round >= 0 else None,
    }
    return Report(
        accuracy=float(np.trace(confusion) / n), mean_loss=loss_sum / n, n_test=n,
        labeled_count=ckpt.labeled_count, confusion=confusion, per_class_accuracy=per_class.astype(np.float64),
        class_names=list(ckpt.class_names), attrs=attrs,
        parents={"checkpoint": ckpt.sha256, "dataset": dataset.sha256},
    )  # fmt: skip
