"""Distances behind one interface: FAISS (GPU index when a GPU is present) for nearest-center search,
exact float64 squared distances for values that decide picks and radii.

Every squared distance that decides a pick or a reported radius is computed by `sqdist_exact`: the
float64 sum of squared differences (no cancellation). FAISS' float32 values (|x|²+|c|²-2x·c) only
choose candidates; a rigorous error bound (`expansion_tolerance`) says when FAISS' choice could be wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

_U32 = 2.0**-24  # unit roundoff of float32
_BLOCK_BYTES = 8 << 20


def block_rows(d: int, itemsize: int = 8) -> int:
    """Rows per block so one block of float64 work stays near 8 MB."""
    return max(256, _BLOCK_BYTES // max(1, d * itemsize))


def sqdist_exact(points: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Squared l2 distances of each row of `points` to one `center`, in float64, blockwise."""
    center = np.asarray(center, np.float64)
    out = np.empty(points.shape[0], np.float64)
    step = block_rows(points.shape[1])
    for start in range(0, points.shape[0], step):
        diff = points[start : start + step].astype(np.float64)
        diff -= center
        np.einsum("ij,ij->i", diff, diff, out=out[start : start + step])
    return out


def sqnorms(x: np.ndarray) -> np.ndarray:
    """Squared norms of rows, float64, blockwise."""
    out = np.empty(x.shape[0], np.float64)
    step = block_rows(x.shape[1])
    for start in range(0, x.shape[0], step):
        blk = x[start : start + step].astype(np.float64)
        np.einsum("ij,ij->i", blk, blk, out=out[start : start + step])
    return out


def sqnorms_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Squared norms of x[rows], float64, gathered block by block."""
    out = np.empty(rows.shape[0], np.float64)
    step = block_rows(x.shape[1])
    for start in range(0, rows.shape[0], step):
        out[start : start + step] = sqnorms(x[rows[start : start + step]])
    return out


def expansion_tolerance(d: int, norm_a: np.ndarray, norm_b: np.ndarray | float, gpu: bool = False) -> np.ndarray:
    """Bound on |fl32(|a|²+|b|²-2a·b) - |a-b|²| given the norms |a|, |b| (not squared).

    Standard bound γ_{d+3}(|a|+|b|)² with γ_n = n·u/(1-n·u); doubled for safety, and taken with
    TF32's unit roundoff on GPUs (cuBLAS may use it for float32 GEMMs)."""
    unit = 2.0**-11 if gpu else _U32
    gamma = (d + 3) * unit / (1 - (d + 3) * unit)
    return 2.0 * gamma * (np.asarray(norm_a) + np.asarray(norm_b)) ** 2


@lru_cache(maxsize=1)
def num_gpus() -> int:
    import faiss

    try:
        return int(faiss.get_num_gpus())
    except AttributeError:  # faiss-cpu builds without the symbol
        return 0


def sqdist_rows(x: np.ndarray, rows: np.ndarray, center: np.ndarray) -> np.ndarray:
    """`sqdist_exact` of the rows `rows` of `x` (gathered block by block, never all at once)."""
    out = np.empty(rows.shape[0], np.float64)
    step = block_rows(x.shape[1])
    for start in range(0, rows.shape[0], step):
        out[start : start + step] = sqdist_exact(x[rows[start : start + step]], center)
    return out


def sqdist_pairs(x: np.ndarray, rows: np.ndarray, centers: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """Exact float64 squared distance of x[rows[i]] to centers[assign[i]], blockwise."""
    out = np.empty(rows.shape[0], np.float64)
    step = block_rows(x.shape[1])
    for start in range(0, rows.shape[0], step):
        diff = x[rows[start : start + step]].astype(np.float64)
        diff -= centers[assign[start : start + step]]
        np.einsum("ij,ij->i", diff, diff, out=out[start : start + step])
    return out


def nearest_centers(
    x: np.ndarray, rows: np.ndarray, centers: np.ndarray, k: int = 2, block: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """float32 squared distances and ids of the k nearest centers of each x[rows[i]] (FAISS
    IndexFlatL2, on all GPUs when present), streamed over blocks. Missing neighbours get inf/-1."""
    import faiss

    d = centers.shape[1]
    index = faiss.IndexFlatL2(d)
    if num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    n = rows.shape[0]
    dist = np.empty((n, k), np.float32)
    ids = np.empty((n, k), np.int64)
    for start in range(0, n, block):
        q = np.ascontiguousarray(x[rows[start : start + block]], dtype=np.float32)
        dist[start : start + len(q)], ids[start : start + len(q)] = index.search(q, k)
    dist[ids < 0] = np.inf
    return dist, ids


def on_gpu() -> bool:
    return num_gpus() > 0


def range_neighbours(
    x: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius_sq: float, max_pairs: int, block: int = 1024,
    stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """For each x[rows[i]], the cols-indices j with float32 |x[rows[i]] - x[cols[j]]|² < radius_sq (FAISS
    range search over an exhaustive CPU index, streamed over query blocks).

    Returns CSR arrays (indptr int64, ids int32 into `cols`, float32 squared distances; ids ascending per
    row), or None once more than `max_pairs` pairs are found: memory stays near 8 bytes a pair plus one
    block's FAISS result, whose size is kept near a tenth of `max_pairs` by shrinking the block."""
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    step = block_rows(x.shape[1], 4)
    for start in range(0, cols.size, step):
        index.add(np.ascontiguousarray(x[cols[start : start + step]], dtype=np.float32))
    counts = np.zeros(rows.size, np.int64)
    ids_parts: list[np.ndarray] = []
    d2_parts: list[np.ndarray] = []
    total, start = 0, 0
    while start < rows.size:
        q = np.ascontiguousarray(x[rows[start : start + block]], dtype=np.float32)
        lims, dist, ids = index.range_search(q, float(radius_sq))
        lims = lims.astype(np.int64)
        total += int(lims[-1])
        if total > max_pairs or (stop is not None and stop()):
            return None
        counts[start : start + q.shape[0]] = np.diff(lims)
        owner = np.repeat(np.arange(q.shape[0]), np.diff(lims))
        order = np.lexsort((ids, owner))
        ids_parts.append(ids[order].astype(np.int32))
        d2_parts.append(dist[order].astype(np.float32))
        start += q.shape[0]
        per_row = max(1.0, total / start)
        block = int(min(4096, max(32, 0.1 * max_pairs / per_row)))
    indptr = np.zeros(rows.size + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0, np.float32)
    return indptr, np.concatenate(ids_parts or [empty_i]), np.concatenate(d2_parts or [empty_f])
