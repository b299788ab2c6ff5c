"""Images from a `dataset` artifact into torch batches: shapes, labels, normalisation, augmentation.

The whole pool stays uint8 in memory (what read_dataset gives); float tensors are built one batch at a
time. Normalisation is per channel, computed from the training images, in [0, 1] units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from alcli.artifacts.dataset import Dataset, read_dataset
from alcli.artifacts.labeled import read_labeled
from alcli.errors import AlcliError

if TYPE_CHECKING:
    import torch

_STATS_BLOCK = 4096


def load(path: str) -> Dataset:
    return read_dataset(path)


def input_shape(images: np.ndarray) -> tuple[int, int, int]:
    """(C, H, W) of N×H×W or N×H×W×C uint8 images."""
    if images.ndim == 3:
        return 1, int(images.shape[1]), int(images.shape[2])
    return int(images.shape[3]), int(images.shape[1]), int(images.shape[2])


def channel_stats(images: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (float32, [0, 1] units) of images[rows], accumulated in float64 blocks."""
    chans = input_shape(images)[0]
    total = np.zeros(chans)
    total_sq = np.zeros(chans)
    count = 0
    for start in range(0, rows.size, _STATS_BLOCK):
        block = images[rows[start : start + _STATS_BLOCK]].astype(np.float64) / 255.0
        block = block.reshape(block.shape[0], -1, chans)
        total += block.sum(axis=(0, 1))
        total_sq += np.square(block).sum(axis=(0, 1))
        count += block.shape[0] * block.shape[1]
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean**2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def labels_for_training(data: Dataset, rows: np.ndarray, source: str) -> np.ndarray:
    """The labels of `rows`; a row still marked -1 (not labelled yet) is an error naming it."""
    labels = data.labels[rows]
    missing = labels < 0
    if np.any(missing):
        row = int(rows[missing][0])
        raise AlcliError(
            f"row {row} is in the labelled set but has label -1 (not labelled yet) in {data.name}"
            f" ({int(missing.sum())} such rows)",
            source,
        )
    return labels


def read_rows(path: str, pool_size: int, option: str) -> np.ndarray:
    """The sorted row indices of a `labeled` artifact, checked against the data set's size."""
    lab = read_labeled(path)
    if lab.pool_size != pool_size:
        raise AlcliError(f"is for a pool of {lab.pool_size} rows, the data set has {pool_size}", path)
    if lab.indices.size == 0:
        raise AlcliError(f"holds no rows ({option})", path)
    return lab.indices


def exclude_rows(rows: np.ndarray, paths: tuple[str, ...], pool_size: int) -> np.ndarray:
    """`rows` minus every row of the `labeled` artifacts in `paths`."""
    for path in paths:
        lab = read_labeled(path)
        if lab.pool_size != pool_size:
            raise AlcliError(f"is for a pool of {lab.pool_size} rows, the data set has {pool_size}", path)
        rows = np.setdiff1d(rows, lab.indices, assume_unique=True)
    return rows


def batch_tensor(
    images: np.ndarray,
    rows: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    augment: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Normalised float32 N×C×H×W tensor of images[rows] (only this batch is converted)."""
    return normalise(uint8_batch(images, rows), mean, std, augment=augment, generator=generator)


def uint8_batch(images: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """images[rows] as a uint8 N×C×H×W tensor (what torchvision's v2 ops take)."""
    import torch

    block = images[rows]
    block = block[:, None, :, :] if block.ndim == 3 else np.ascontiguousarray(block.transpose(0, 3, 1, 2))
    return torch.from_numpy(block)


def normalise(
    x: torch.Tensor,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    augment: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 N×C×H×W → normalised float32, then (with `augment`) random shifts and colour flips."""
    import torch

    x = x.float().div_(255.0)
    x = (x - torch.from_numpy(mean).view(1, -1, 1, 1)) / torch.from_numpy(std).view(1, -1, 1, 1)
    if augment:
        x = _augment(x, generator)
    return x


def _augment(x: torch.Tensor, generator: torch.Generator | None, pad: int = 2) -> torch.Tensor:
    """Random shifts of up to `pad` pixels (zero fill, i.e. the mean) and, for colour images, random
    horizontal flips (digits are not flip-invariant)."""
    import torch

    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    if x.shape[1] == 3:
        flip = torch.rand(n, generator=generator) < 0.5
        out[flip] = out[flip].flip(-1)
    return out
