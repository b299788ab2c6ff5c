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
SCAN_BLOCK_BYTES = 4 << 20  # float64 scratch of one block of the exact scan (points × centers)


def nonzero2(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.nonzero` of a 2-D mask (row, column indices, row-major order), ~6x faster: numpy's
    2-D nonzero walks the array element by element, `flatnonzero` scans it as one vector."""
    flat = np.flatnonzero(mask)
    rows = flat // mask.shape[1]
    return rows, flat - rows * mask.shape[1]


def block_rows(d: int, itemsize: int = 8) -> int:
    """Rows per block so one block of float64 work stays near 8 MB."""
    return max(256, _BLOCK_BYTES // max(1, d * itemsize))


def sqdist_exact(points: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Squared l2 distances of each row of `points` to one `center`, in float64, blockwise."""
    center = np.asarray(center, np.float64)
    out = np.empty(points.shape[0], np.float64)
    step = block_rows(points.shape[1])
    for start in range(0, points.shape[0], step):
        diff = np.subtract(points[start : start + step], center, dtype=np.float64)  # float32 widens exactly
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


def up32(t: np.ndarray) -> np.ndarray:
    """float64 values as the float32 values no smaller (rounded to nearest, then one step up where that
    went down), for comparing float32 values against a float64 limit."""
    r = np.asarray(t, np.float64).astype(np.float32)
    down = r < t
    r[down] = np.nextafter(r[down], np.float32(np.inf))
    return r


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


def rows_block(x: np.ndarray, rows: np.ndarray, per_extra: int, dtype: type | None = None,
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """x[rows] (rows ascending and unique) for a product: the run of x the rows span, a view (no gather),
    when it has at most one row not in `rows` per `per_extra` of them — then also `at`, each row's place in
    the run (None when the run is the rows) — else the rows gathered (at None). dtype: the rows in that
    dtype (a view only when x has it)."""
    span = int(rows[-1] - rows[0]) + 1
    if span * per_extra <= rows.size * (per_extra + 1):
        run = np.asarray(x[int(rows[0]) : int(rows[0]) + span])
        if dtype is None or run.dtype == dtype:
            return run, None if span == rows.size else rows - rows[0]
    return (np.asarray(x[rows]) if dtype is None else np.ascontiguousarray(x[rows], dtype)), None


def sqdist_pairs(x: np.ndarray, rows: np.ndarray, centers: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """Exact float64 squared distance of x[rows[i]] to centers[assign[i]], blockwise."""
    out = np.empty(rows.shape[0], np.float64)
    step = block_rows(x.shape[1])
    for start in range(0, rows.shape[0], step):
        diff = np.subtract(x[rows[start : start + step]], centers[assign[start : start + step]], dtype=np.float64)
        np.einsum("ij,ij->i", diff, diff, out=out[start : start + step])
    return out


def _flat_index(centers: np.ndarray):
    import faiss

    index = faiss.IndexFlatL2(centers.shape[1])
    if num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    return index


def _search(index, x: np.ndarray, rows: np.ndarray, k: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    n = rows.shape[0]
    dist = np.empty((n, k), np.float32)
    ids = np.empty((n, k), np.int64)
    for start in range(0, n, block):
        q = np.ascontiguousarray(x[rows[start : start + block]], dtype=np.float32)
        dist[start : start + len(q)], ids[start : start + len(q)] = index.search(q, k)
    dist[ids < 0] = np.inf
    return dist, ids


def nearest_centers(
    x: np.ndarray, rows: np.ndarray, centers: np.ndarray, k: int = 2, block: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """float32 squared distances and ids of the k nearest centers of each x[rows[i]] (FAISS
    IndexFlatL2, on all GPUs when present), streamed over blocks. Missing neighbours get inf/-1."""
    return _search(_flat_index(centers), x, rows, k, block)


def unique_rows(a: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row of `a` (bitwise), ascending."""
    a = np.ascontiguousarray(a)
    if a.shape[0] < 2:
        return np.arange(a.shape[0])
    keys = a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()
    return np.sort(np.unique(keys, return_index=True)[1])


def _norm_bands(cn: np.ndarray, most: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) norm of groups of centers whose norms lie within a small ratio of each other
    (zero norms on their own), so one big-norm center never loosens the bound of all the others."""
    pos = cn[cn > 0]
    ratio = 1.1
    if pos.size and pos.max() / pos.min() > ratio**most:
        ratio = (pos.max() / pos.min()) ** (1.0 / most)
    band = np.full(cn.shape, -1, np.int64)
    if pos.size:
        band[cn > 0] = np.floor(np.log(cn[cn > 0] / pos.min()) / np.log(ratio)).astype(np.int64)
    order = np.argsort(band, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(band[order])) + 1]
    return np.minimum.reduceat(cn[order], starts), np.maximum.reduceat(cn[order], starts)


def nearest_exact(
    x: np.ndarray, rows: np.ndarray, centers: np.ndarray, gpu: bool = False, k: int = 8, block: int = 1 << 16
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Exact float64 squared distance to the nearest of `centers` (k×d float32) for every x[rows[i]], and
    that center's index (the lowest among exact ties). Returns (s, nearest, counters and the points'
    norms |x| under "norms").

    FAISS proposes k neighbours by float32 distance; every listed one whose value is within the rigorous
    per-pair error bound of the best is measured exactly. An unlisted center c is at least
    max(fl_k - tol(|x|, |c|), (|x| - |c|)²) away, bounded per band of similar center norms, so a few
    large-norm centers do not loosen anyone's bound. The rare point still in doubt gets a blocked float64
    product against all centers, and exact measurement of the few centers within its error bound.
    Bitwise-duplicate centers are searched once."""
    first = unique_rows(centers)
    u = centers if first.size == centers.shape[0] else np.ascontiguousarray(centers[first])
    d = u.shape[1]
    cn = np.sqrt(sqnorms(u))
    lo, hi = _norm_bands(cn)
    k = min(k, u.shape[0])
    index = _flat_index(u)
    s = np.empty(rows.shape[0], np.float64)
    near = np.empty(rows.shape[0], np.int64)
    norms = np.empty(rows.shape[0], np.float64)
    counts = {"pairs_measured": 0, "points_scanned": 0, "norms": norms}
    for start in range(0, rows.shape[0], block):
        part = rows[start : start + block]
        dist, ids = _search(index, x, part, k, 8192)
        pn = norms[start : start + part.size] = np.sqrt(sqnorms_rows(x, part))
        d64 = dist.astype(np.float64)
        tol = expansion_tolerance(d, pn[:, None], cn[np.maximum(ids, 0)], gpu=gpu)
        upper = (d64 + tol).min(axis=1)
        pi, pj = nonzero2(d64 - tol <= upper[:, None])
        cj = ids[pi, pj]
        s_blk, n_blk = _group_min(pi, cj, sqdist_pairs(x, part[pi], u, cj), part.size)
        counts["pairs_measured"] += int(pi.size)
        if k < u.shape[0]:  # could a center FAISS did not list be nearer?
            kth = d64[:, -1]
            lower = np.full(part.size, np.inf)
            for a, b in zip(lo, hi, strict=True):
                gap = np.maximum(np.maximum(a - pn, pn - b) - 1e-12 * (pn + b), 0.0)
                np.minimum(lower, np.maximum(kth - expansion_tolerance(d, pn, b, gpu=gpu), gap * gap), out=lower)
            doubt = np.flatnonzero(lower < s_blk)
            if doubt.size:
                s_blk[doubt], n_blk[doubt], pairs = _scan(x, part[doubt], u, cn)
                counts["points_scanned"] += int(doubt.size)
                counts["pairs_measured"] += pairs
        s[start : start + part.size] = s_blk
        near[start : start + part.size] = first[n_blk]
    return s, near, counts


def _group_min(owner: np.ndarray, ids: np.ndarray, d2: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per owner 0..n-1 (each present at least once): the smallest d2 and its lowest id."""
    order = np.lexsort((ids, d2, owner))
    head = order[np.r_[0, np.flatnonzero(np.diff(owner[order])) + 1]]
    return d2[head], ids[head]


def _scan(x: np.ndarray, rows: np.ndarray, u: np.ndarray, cn: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact nearest of all centers `u` for x[rows]: float64 products over blocks of points and of centers
    (a few MB of scratch, never a float64 copy of all centers); a first sweep finds each point's upper
    bound, a second the centers within the float64 error bound of it, which are measured exactly."""
    d = u.shape[1]
    gamma = 2.0 * (d + 3) * 2.0**-53 / (1 - (d + 3) * 2.0**-53)
    cb = max(1, SCAN_BLOCK_BYTES // (8 * d))  # centers a block
    rb = max(1, SCAN_BLOCK_BYTES // (8 * max(d, min(cb, u.shape[0]))))  # points a block
    s = np.empty(rows.size, np.float64)
    near = np.empty(rows.size, np.int64)
    pairs = 0
    for r0 in range(0, rows.size, rb):
        part = rows[r0 : r0 + rb]
        xb = x[part].astype(np.float64)
        pn = np.sqrt(np.einsum("ij,ij->i", xb, xb))
        upper = np.full(part.size, np.inf)
        for c0 in range(0, u.shape[0], cb):
            d2, tol = _sweep(xb, pn, u[c0 : c0 + cb], cn[c0 : c0 + cb], gamma)
            np.minimum(upper, (d2 + tol).min(axis=1), out=upper)
        found = []
        for c0 in range(0, u.shape[0], cb):
            d2, tol = _sweep(xb, pn, u[c0 : c0 + cb], cn[c0 : c0 + cb], gamma)
            pi, cj = nonzero2(d2 - tol <= upper[:, None])
            found.append((pi, cj + c0))
        pi, cj = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
        s[r0 : r0 + part.size], near[r0 : r0 + part.size] = _group_min(pi, cj, sqdist_pairs(x, part[pi], u, cj),
                                                                       part.size)
        pairs += int(pi.size)
    return s, near, pairs


def _sweep(xb: np.ndarray, pn: np.ndarray, ub: np.ndarray, un: np.ndarray, gamma: float) -> tuple[np.ndarray, ...]:
    """float64 |x|²+|c|²-2x·c for a block of points and one of centers, and its error bound."""
    d2 = (pn * pn)[:, None] + (un * un)[None, :] - 2.0 * (xb @ ub.astype(np.float64).T)
    return d2, 2 * gamma * (pn[:, None] + un[None, :]) ** 2


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
