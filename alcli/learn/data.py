"""Images from a `dataset` artifact into torch batches: shapes, labels, normalisation, augmentation.

The pool stays in its file (`open_pool`: `images` is an alcli.artifacts.pixels.Pixels reader): `stream`
reads each batch's rows, ahead of the model, in DataLoader worker processes that open the file themselves,
with a chunk cache sized for the batch (`size_cache`); float tensors are built one batch at a time, in the
calling process, so every random draw (augmentation) happens in the same order as a read from memory.
Memory is O(batch + chunk cache), whatever N. Normalisation is per channel, computed in blocks from the file
over the training images, in [0, 1] units.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from alcli.artifacts.dataset import Dataset, open_dataset, read_dataset
from alcli.artifacts.labeled import read_labeled
from alcli.artifacts.pixels import Pixels
from alcli.errors import AlcliError

if TYPE_CHECKING:
    import torch

_STATS_BLOCK = 4096  # rows, for images up to 32×32×3 (the float64 blocks of 12 Mi values keep sums as they were)
_STATS_VALUES = _STATS_BLOCK * 32 * 32 * 3
RANDOM_CACHE = 128 << 20  # bytes of chunks kept for random (training) batches, per reading process
WORKERS = 1


def load(path: str) -> Dataset:
    """The whole data set in memory (small pools, tests); the commands stream it with `open_pool`."""
    return read_dataset(path)


def open_pool(path: str) -> contextlib.AbstractContextManager[Dataset]:
    """The data set at `path` (`-` = stdin) with its pixels left in the file, for a `with` block."""
    return open_dataset(path)


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
    step = max(1, min(_STATS_BLOCK, _STATS_VALUES // max(int(np.prod(images.shape[1:])), 1)))
    for start in range(0, rows.size, step):
        block = images[rows[start : start + step]].astype(np.float64) / 255.0
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


def size_cache(images: Any, batch_rows: int, *, random: bool) -> None:
    """Give a `Pixels` reader a chunk cache that holds every chunk a batch of `batch_rows` rows touches (in
    order: the chunks one run of rows spans; `random`: one per row, and up to RANDOM_CACHE of the pool, as
    training comes back to the same rows every epoch)."""
    if not isinstance(images, Pixels) or images.chunks is None:
        return
    chunk = images.chunk_bytes
    total = -(-len(images) // images.chunk_rows)
    touched = min(total, batch_rows if random else images.chunks_spanned(batch_rows))
    want = touched * chunk
    if random:
        want = max(want, min(total * chunk, RANDOM_CACHE))
    images.set_cache(want + chunk)


class _Failed:
    """A read that failed in a worker, carried back to be raised in the main process."""

    def __init__(self, error: AlcliError) -> None:
        self.message, self.source = error.message, error.source


class _Reads:
    """A map-style data set for torch's DataLoader: item i = the uint8 tensors of plan[i]'s row arrays."""

    def __init__(self, images: Any, plan: Sequence[tuple[np.ndarray, ...]]) -> None:
        self.images, self.plan = images, plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> Any:
        try:
            return tuple(uint8_batch(self.images, rows) for rows in self.plan[i])
        except AlcliError as exc:
            return _Failed(exc)


def stream(images: Any, plan: Sequence[tuple[np.ndarray, ...]],
           workers: int = WORKERS) -> Iterator[tuple[torch.Tensor, ...]]:
    """For each plan item (a tuple of row arrays), the uint8 N×C×H×W tensors of those rows, in plan order.
    `workers` processes read ahead (two items each); 0 reads in this process (also inside a daemon process,
    e.g. a Dask worker, which may not have children)."""
    import torch

    if multiprocessing.current_process().daemon:
        workers = 0
    workers = max(0, min(workers, len(plan) - 1))
    loader = torch.utils.data.DataLoader(
        _Reads(images, plan), batch_size=None, shuffle=False, num_workers=workers,
        prefetch_factor=2 if workers else None, multiprocessing_context=_context() if workers else None,
        generator=torch.Generator(),  # its workers' seeds come from here, not from torch's global RNG (dropout's)
    )  # fmt: skip
    it = iter(loader)
    try:
        for item in it:
            if isinstance(item, _Failed):
                raise AlcliError(item.message, item.source)
            yield item
    finally:
        del it


def _context() -> str:
    """fork where there is one: the worker gets the plan and the reader without pickling, and starts at once."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


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

    x = x.float().div_(255.0)  # keeps x's memory format (channels_last stays channels_last)
    if np.any(mean != 0) or np.any(std != 1):  # (x - 0) / 1 is x: a backbone's trunk normalises by itself
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
