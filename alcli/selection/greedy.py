"""Exact k-Center-Greedy (the paper's Algorithm 1) as shard-local updates plus a global reduce.

Each step adds the point farthest from its nearest center. Picks are exactly the textbook algorithm's
over float64 squared l2 distances, ties broken by the lowest position; no n×n matrix is ever formed.

Speed comes from skipping work the triangle inequality proves useless. Every point keeps its nearest
center a(i) and the exact squared distance s_i to it. When a new center c joins, with D = |c_a(i) - c|,
|x_i - c| >= D - sqrt(s_i), so x_i can only get closer to c when D² < 4·s_i. D² to every existing center
comes from one float32 matrix-vector product over the centers (k×d, much smaller than n×d), lowered
by a rigorous float32 error bound; only the points that survive the test are measured, exactly.

`GreedyShard` holds a subset of the points and does all per-point work; `kcenter_greedy` drives one
or more shards: per step it reduces the shards' (max distance, lowest position), broadcasts the new
center and the lower bounds. A distributed run gives each worker one shard and the same driver loop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from alcli import distance


class GreedyShard:
    """Per-point state of one shard: x[rows[i]] has global position positions[i] (ascending)."""

    def __init__(self, x: np.ndarray, rows: np.ndarray, positions: np.ndarray) -> None:
        self.x = x
        self.rows = np.asarray(rows, np.int64)
        self.positions = np.asarray(positions, np.int64)
        m = self.rows.shape[0]
        self.s = np.full(m, -1.0)  # exact squared distance to the nearest center; -1 = is a center
        self.thr = np.full(m, -np.inf)  # 4·s·(1+ε): a new center at D² >= thr cannot help
        self.assign = np.zeros(m, np.int32)
        self.measured = 0  # points measured exactly, for the report

    def start(self, centers: np.ndarray, gpu: bool = False, neighbours: int = 8) -> None:
        """Nearest of `centers` (k×d float32) for every point. FAISS proposes a few neighbours; each
        one whose float32 distance is within the rigorous error bound of the best is measured exactly,
        and the rare point whose whole neighbour list is that close gets an exact scan of all centers."""
        if self.rows.size == 0:
            return
        kc, d = centers.shape
        k = min(neighbours, kc)
        dist, ids = distance.nearest_centers(self.x, self.rows, centers, k=k)
        pnorm = np.sqrt(distance.sqnorms_rows(self.x, self.rows))
        cmax = float(np.sqrt(distance.sqnorms(centers).max()))
        limit = dist[:, 0] + 2 * distance.expansion_tolerance(d, pnorm, cmax, gpu=gpu)
        close = dist <= limit[:, None]
        scan = close[:, -1].copy() if k < kc else np.zeros(len(dist), bool)
        close[scan] = False
        close[scan, 0] = True  # keep one pair per point so every point has a group below
        pi, pj = np.nonzero(close)
        d2 = distance.sqdist_pairs(self.x, self.rows[pi], centers, ids[pi, pj])
        order = np.lexsort((d2, pi))  # per point, its smallest exact distance first
        first = order[np.r_[0, np.flatnonzero(np.diff(pi[order])) + 1]]
        self.s = d2[first]
        self.assign = ids[pi[first], pj[first]].astype(np.int32)
        for i in np.flatnonzero(scan):
            all_d2 = distance.sqdist_exact(centers, self.x[self.rows[i]].astype(np.float64))
            j = int(np.argmin(all_d2))
            self.s[i], self.assign[i] = all_d2[j], j
        self.measured += int(pi.size)
        self.thr = 4.0 * self.s * (1 + 1e-9)

    def start_single(self, center: np.ndarray) -> None:
        """All points measured against one first center (id 0)."""
        self.s = distance.sqdist_rows(self.x, self.rows, center)
        self.assign[:] = 0
        self.thr = 4.0 * self.s * (1 + 1e-9)
        self.measured += self.rows.size

    def best(self) -> tuple[float, int]:
        """(largest squared distance, its lowest position); (-1, -1) when no point is left."""
        if self.s.size == 0:
            return -1.0, -1
        i = int(np.argmax(self.s))
        return float(self.s[i]), int(self.positions[i]) if self.s[i] >= 0 else -1

    def take(self, position: int) -> np.ndarray | None:
        """Mark the point at `position` as a center; return its vector (None if not in this shard)."""
        i = int(np.searchsorted(self.positions, position))
        if i >= self.positions.size or self.positions[i] != position:
            return None
        self.s[i] = -1.0
        self.thr[i] = -np.inf
        return np.asarray(self.x[self.rows[i]])

    def add_center(self, center: np.ndarray, center_id: int, lower: np.ndarray) -> None:
        """Fold in a new center; lower[j] <= |c_j - center|² for every existing center j."""
        idx = np.flatnonzero(self.thr > lower[self.assign])
        if idx.size == 0:
            return
        d2 = distance.sqdist_rows(self.x, self.rows[idx], center)
        better = d2 < self.s[idx]
        idx, d2 = idx[better], d2[better]
        self.s[idx] = d2
        self.assign[idx] = center_id
        self.thr[idx] = 4.0 * d2 * (1 + 1e-9)
        self.measured += int(better.size)


@dataclass
class GreedyResult:
    picks: np.ndarray  # positions in pick order
    scores: np.ndarray  # each pick's distance to its nearest center when it was picked (l2)
    radius_before: float | None
    radius_after: float
    seconds: dict[str, float] = field(default_factory=dict)
    measured: int = 0


class CenterBounds:
    """The centers so far (float32) and the lower bounds on squared distances to a new one."""

    def __init__(self, capacity: int, d: int, gpu: bool = False) -> None:
        self.c = np.empty((capacity, d), np.float32)
        self.norm = np.empty(capacity, np.float64)
        self.k = 0
        self.d = d
        self.gpu = gpu

    def add(self, vectors: np.ndarray) -> None:
        m = vectors.shape[0]
        self.c[self.k : self.k + m] = vectors
        self.norm[self.k : self.k + m] = np.sqrt(distance.sqnorms(vectors))
        self.k += m

    def lower(self, v: np.ndarray) -> np.ndarray:
        k = self.k
        v32 = np.asarray(v, np.float32)
        vn = float(np.sqrt(np.dot(v.astype(np.float64), v.astype(np.float64))))
        dots = self.c[:k] @ v32
        d2 = self.norm[:k] ** 2 + vn * vn - 2.0 * dots
        d2 -= distance.expansion_tolerance(self.d, self.norm[:k], vn, gpu=False)
        return np.maximum(d2, 0.0, out=d2)


def rows_mean(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float64 mean of x[rows], summed block by block in a fixed order (a distributed driver reuses it)."""
    step = distance.block_rows(x.shape[1])
    total = np.zeros(x.shape[1], np.float64)
    for start in range(0, rows.size, step):
        total += x[rows[start : start + step]].astype(np.float64).sum(axis=0)
    return total / rows.size


def farthest_from_mean(x: np.ndarray, rows: np.ndarray) -> int:
    """Index into `rows` of the point farthest (float64) from the mean of x[rows]; lowest on ties."""
    return int(np.argmax(distance.sqdist_rows(x, rows, rows_mean(x, rows))))


def kcenter_greedy(
    x: np.ndarray,
    labeled: np.ndarray,
    candidates: np.ndarray,
    budget: int,
    shards: Sequence[GreedyShard] | None = None,
    blas_threads: int = 1,
) -> GreedyResult:
    """Pick `budget` of `candidates` (sorted positions into x) greedily given centers x[labeled].

    With no labelled points the first pick is the candidate farthest from the candidates' mean."""
    t0 = time.perf_counter()
    d = x.shape[1]
    gpu = distance.on_gpu()
    if shards is None:  # features on disk (alcli.outofcore) come in shards: bounded scratch per shard
        step = getattr(x, "shard_rows", 0) or max(1, candidates.size)
        shards = [GreedyShard(x, part, part) for part in np.split(candidates, range(step, candidates.size, step))]
    bounds = CenterBounds(labeled.size + budget, d, gpu)
    picks: list[int] = []
    scores: list[float] = []
    radius_before: float | None = None
    if labeled.size:
        bounds.add(np.asarray(x[labeled], np.float32))
        for shard in shards:
            shard.start(bounds.c[: bounds.k], gpu=gpu)
        radius_before = float(np.sqrt(max(_reduce(shards)[0], 0.0)))
    elif budget > 0:
        first = int(candidates[farthest_from_mean(x, candidates)])
        vec = np.asarray(x[first], np.float32)
        bounds.add(vec[None, :])
        for shard in shards:
            shard.start_single(vec.astype(np.float64))
        _take(shards, first)
        picks.append(first)
        scores.append(float("nan"))
    t1 = time.perf_counter()
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        while len(picks) < budget:
            value, pos = _reduce(shards)
            if pos < 0:
                break
            vec = _take(shards, pos)
            lower = bounds.lower(vec)
            center_id = bounds.k
            bounds.add(vec[None, :])
            v64 = vec.astype(np.float64)
            for shard in shards:
                shard.add_center(v64, center_id, lower)
            picks.append(pos)
            scores.append(float(np.sqrt(value)))
    value, _ = _reduce(shards)
    t2 = time.perf_counter()
    return GreedyResult(
        picks=np.asarray(picks, np.int64),
        scores=np.asarray(scores, np.float64),
        radius_before=radius_before,
        radius_after=float(np.sqrt(max(value, 0.0))),
        seconds={"initial_distances": t1 - t0, "greedy": t2 - t1},
        measured=sum(s.measured for s in shards),
    )


def _reduce(shards: Sequence[GreedyShard]) -> tuple[float, int]:
    best_value, best_pos = -1.0, -1
    for shard in shards:
        value, pos = shard.best()
        if pos >= 0 and (value > best_value or (value == best_value and pos < best_pos)):
            best_value, best_pos = value, pos
    return best_value, best_pos


def _take(shards: Sequence[GreedyShard], position: int) -> np.ndarray:
    for shard in shards:
        vec = shard.take(position)
        if vec is not None:
            return vec
    raise RuntimeError(f"position {position} is in no shard")


def covering_radius(x: np.ndarray, centers: np.ndarray, pool: np.ndarray) -> float | None:
    """max over pool points of the l2 distance to the nearest of x[centers]; None with no centers."""
    if centers.size == 0:
        return None
    points = np.setdiff1d(pool, centers)
    if points.size == 0:
        return 0.0
    shard = GreedyShard(x, points, points)
    shard.start(np.asarray(x[centers], np.float32), gpu=distance.on_gpu())
    return float(np.sqrt(max(shard.best()[0], 0.0)))
