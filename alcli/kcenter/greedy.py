"""Exact k-Center-Greedy (the paper's Algorithm 1) as shard-local updates plus a global reduce.

Each step adds the point farthest from its nearest center. Picks are exactly the textbook algorithm's
over float64 squared l2 distances, ties broken by the lowest position; no n×n matrix is ever formed.

Speed comes from skipping work that bounds prove useless, and from taking several picks a pass:
- Start: every point's nearest labelled center, exactly (`groupsearch.nearest_grouped`: centers in
  balls, a point meets only the balls its bound cannot rule out; where that prunes little,
  `distance.nearest_exact`: FAISS proposes, error bounds decide, a float64 scan settles the rare doubt).
- Several picks a pass: the shards report their farthest points; `plan` takes the first as the exact
  reduce (largest, lowest position) and each next one only while it provably stays the farthest after
  folding in the picks before it (the Dask driver's round-trip trick, the same function). On clustered
  data one pass proves ~100-120 of the 128 reported (`top_k`), so the per-pass costs below are paid ~100× less
  often (64 reported: half the picks a pass, and measured 1.1× slower at the paper's scale and at bench/scale.py).
  After a dense fold (most points met: no or few labelled centers, a pass costs O(n)) the shards report
  `dense_top_k` rivals in all: more of the far regions, more picks proven per costly pass (bench/scale.py:
  35 passes → 21, the greedy 0.7× the time). Each pick is folded into the rivals by a float32 product with
  the rigorous bound below, exact float64 only for the rivals it could lower (`_fold_pick`), and stops once
  it has folded as many rivals as the pass has points (then a pass is cheaper). The Dask driver
  (`alcli.scale.distributed`) follows the same rules, one round trip later.
- Triangle test: every point keeps its nearest center a(i) and the exact squared distance s_i. A new
  center c at D = |c_a(i) - c| can only get closer when D² < 4·s_i; D² to every existing center and
  every new center of the pass comes from one float32 matrix product over the centers, lowered by a
  rigorous error bound.
- Screen: each surviving point gets float32 distances to all the pass's new centers from one product
  (screening single pairs by the triangle test first cost more than the product it saves: measured
  1.1-1.6× slower folds), with one rigorous bound per point, γ(|x|+max|c|)²; only pairs that could be a
  point's new nearest are measured exactly in float64.

`GreedyShard` (alcli.kcenter.shard) holds a subset of the points and does all per-point work, with
loose points (from the start and from dense folds); `kcenter_greedy` drives one or more shards and returns
a profile (passes, picks a pass, pairs screened and measured, points loose, seconds in the argmax/plan, the
center bounds and the folds). A distributed run gives each worker one shard.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from alcli.kcenter import distance, groupsearch
from alcli.kcenter.shard import GreedyShard


@dataclass
class GreedyResult:
    picks: np.ndarray  # positions in pick order
    scores: np.ndarray  # each pick's distance to its nearest center when it was picked (l2)
    radius_before: float | None
    radius_after: float
    seconds: dict[str, float] = field(default_factory=dict)
    measured: int = 0
    profile: dict[str, float | str] = field(default_factory=dict)  # passes, picks a pass, seconds per part, start


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
        """Lower bounds on |c_j - v|² for every center j so far (float32 product, rigorous bound)."""
        return self.lower_many(np.asarray(v)[None, :])[:, 0]

    def lower_many(self, vs: np.ndarray) -> np.ndarray:
        """k×m lower bounds on |c_j - vs[t]|²: one float32 matrix product over the centers."""
        k = self.k
        v32 = np.asarray(vs, np.float32)
        vn = np.sqrt(distance.sqnorms(v32))
        d2 = (self.norm[:k] ** 2)[:, None] + (vn * vn)[None, :] - 2.0 * (self.c[:k] @ v32.T)
        d2 -= distance.expansion_tolerance(self.d, self.norm[:k, None], vn[None, :], gpu=False)
        return np.maximum(d2, 0.0, out=d2)

    def lower_nearest(self, vs: np.ndarray) -> np.ndarray:
        """k×1 lower bounds on min_t |c_j - vs[t]|² (what `GreedyShard.apply` needs): the float32 values
        |c|²+|v|²-2c·v formed in float32, as FAISS does, their row minimum lowered by one bound per center,
        γ(|c_j| + max|v|)² — cheaper than `lower_many`'s k×m float64 pairs (same product)."""
        k = self.k
        v32 = np.asarray(vs, np.float32)
        vn = np.sqrt(distance.sqnorms(v32))
        fl = self.c[:k] @ v32.T
        fl *= np.float32(-2.0)
        fl += (vn * vn).astype(np.float32)[None, :]
        fl += (self.norm[:k] ** 2).astype(np.float32)[:, None]
        low = fl.min(axis=1).astype(np.float64)
        low -= distance.expansion_tolerance(self.d, self.norm[:k], float(vn.max()), gpu=False)
        return np.maximum(low, 0.0, out=low)[:, None]


WIDE_BYTES = 8 << 20  # the wide report's vectors (and the plan's copy of them) stay small beside the features
MARGIN = 1e-9  # relative: a pick after the first of a batch needs this lead over every rival


def plan(vals: np.ndarray, pos: np.ndarray, vecs: np.ndarray, bound: float, room: int,
         work: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Which of the reported farthest points are the greedy's next picks, and their distances² when picked.

    vals/pos/vecs: the farthest points of every shard (squared distance, position, float32 vector); bound: no
    unreported point is farther. The first pick is the exact reduce (largest, then lowest position); each
    further one only if, after folding in the picks so far (exact float64 distances), it beats every other
    reported point and the bound by a relative margin far above rounding — so the picks are the ones
    single steps make, several per pass over the points. work: stop once the picks have been folded into this
    many rivals in all (a pass over that many points would cost about as much as the plan so far)."""
    if pos.size == 0 or room <= 0:
        return np.zeros(0, np.int64), np.zeros(0)
    vals = vals.astype(np.float64)
    first = int(np.lexsort((pos, -vals))[0])
    chosen, values = [first], [float(vals[first])]
    # Only points above the bound can ever be picked (values only fall), and one at or below it can never be
    # the runner-up that blocks a pick (a pick must beat the bound by the margin anyway): drop them, so each
    # step folds the new pick into the live rivals only (`_fold_pick`: a float32 product, exact float64 only
    # for the rivals it could lower). A dropped rival keeps its row with value -1 (folding never raises it);
    # the rows are compacted only when most are dropped.
    vals[first] = -1.0
    live = np.flatnonzero(vals > bound)
    vn = np.sqrt(distance.sqnorms(vecs))
    lv, lvec, ln = vals[live], np.ascontiguousarray(vecs[live], np.float32), vn[live]
    ln2 = (ln * ln).astype(np.float32)
    spent = 0
    while len(chosen) < room and live.size and spent < work:
        i = chosen[-1]
        _fold_pick(lv, lvec, ln, ln2, np.asarray(vecs[i], np.float32), float(vn[i]))
        spent += live.size
        keep = lv > bound
        alive = int(np.count_nonzero(keep))
        if alive == 0:
            break
        if 2 * alive < live.size:
            live, lv, lvec, ln, ln2 = live[keep], lv[keep], lvec[keep], ln[keep], ln2[keep]
        else:
            lv[~keep] = -1.0
        j1 = int(np.argmax(lv))  # the largest, the lowest index among equals (as a stable sort's first)
        v1 = lv[j1]
        lv[j1] = -np.inf
        v2 = lv.max() if lv.size > 1 else -np.inf
        lv[j1] = v1
        if not (v1 > bound * (1 + MARGIN) and v1 > v2 * (1 + MARGIN)):
            break
        chosen.append(int(live[j1]))
        values.append(float(v1))
        lv[j1] = -1.0  # picked: the next fold drops it
    return np.asarray(chosen, np.int64), np.asarray(values)


def _fold_pick(lv: np.ndarray, lvec: np.ndarray, ln: np.ndarray, ln2: np.ndarray, v: np.ndarray, vn: float) -> None:
    """lv[r] = min(lv[r], |lvec[r] - v|²) exactly: a float32 product with the rigorous bound skips the rivals
    the pick cannot lower; the rest are measured in float64. ln: |lvec[r]| (float64), ln2: ln² in float32,
    vn: |v|."""
    fl = lvec @ v
    fl *= np.float32(-2.0)
    fl += ln2
    fl += np.float32(vn * vn)
    low = fl.astype(np.float64)
    low -= distance.expansion_tolerance(v.size, ln, vn)
    near = np.flatnonzero(low < lv)
    if near.size:
        lv[near] = np.minimum(lv[near], distance.sqdist_exact(lvec[near], v.astype(np.float64)))


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
    top_k: int = 128,
    dense_top_k: int = 8192,
    _start: str | None = None,
) -> GreedyResult:
    """Pick `budget` of `candidates` (sorted positions into x) greedily given centers x[labeled].

    With no labelled points the first pick is the candidate farthest from the candidates' mean."""
    t0 = time.perf_counter()
    d = x.shape[1]
    gpu = distance.on_gpu()
    if shards is None:  # features on disk (alcli.scale.outofcore) come in shards: bounded scratch per shard
        step = getattr(x, "shard_rows", 0) or max(1, candidates.size)
        shards = [GreedyShard(x, part, part) for part in np.split(candidates, range(step, candidates.size, step))]
    for shard in shards if _start else ():  # bench/kcenter.py --start: faiss, grouped or auto
        shard.start_method = _start
    bounds = CenterBounds(labeled.size + budget, d, gpu)
    picks: list[int] = []
    scores: list[float] = []
    radius_before: float | None = None
    if labeled.size:
        bounds.add(np.asarray(x[labeled], np.float32))
        for shard in shards:
            shard.start(bounds.c[: bounds.k], gpu=gpu, loose=True)
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
    prof = {"passes": 0, "bounds_s": 0.0, "fold_s": 0.0, "argmax_s": 0.0}
    batched = all(getattr(shard, "batched", False) for shard in shards)
    # rivals a shard reports after a dense fold: dense_top_k in all, their vectors at most WIDE_BYTES
    wide = max(top_k, min(dense_top_k, WIDE_BYTES // (4 * d)) // max(len(shards), 1))
    points = max(candidates.size, top_k * top_k)  # a plan folding picks into more rivals than this costs a pass
    k = wide if any(getattr(shard, "dense", False) for shard in shards) else top_k
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        while len(picks) < budget:
            ta = time.perf_counter()
            if batched:
                tops = [shard.top(k) for shard in shards]
                vals = np.concatenate([t[0] for t in tops])
                pos = np.concatenate([t[1] for t in tops])
                vecs = np.concatenate([t[2] for t in tops])
                chosen, values = plan(vals, pos, vecs, max(t[3] for t in tops), budget - len(picks), points)
                if chosen.size == 0:
                    break
                new_pos, new_vecs = pos[chosen], vecs[chosen]
            else:
                value, p = _reduce(shards)
                if p < 0:
                    break
                new_vecs = np.asarray(_take(shards, p), np.float32)[None, :]
                new_pos, values = np.array([p]), np.array([value])
            tb = time.perf_counter()
            pairs = not batched or any(getattr(shard, "pair_bounds", True) for shard in shards)
            lower = bounds.lower_many(new_vecs) if pairs else bounds.lower_nearest(new_vecs)
            center_id = bounds.k
            bounds.add(new_vecs)
            tc = time.perf_counter()
            for shard in shards:
                if batched:
                    shard.apply(new_pos, new_vecs, center_id, lower, scores=False)
                else:
                    shard.add_center(new_vecs[0].astype(np.float64), center_id, lower[:, 0])
            if batched:  # a dense fold (most points met) that proved few of the rivals: report more next pass
                dense = any(getattr(shard, "dense", False) for shard in shards)
                k = wide if dense and 2 * chosen.size < pos.size else top_k
            td = time.perf_counter()
            picks.extend(new_pos.tolist())
            scores.extend(np.sqrt(values).tolist())
            prof["passes"] += 1
            prof["argmax_s"] += tb - ta
            prof["bounds_s"] += tc - tb
            prof["fold_s"] += td - tc
    value, _ = _reduce(shards)
    t2 = time.perf_counter()
    return GreedyResult(
        picks=np.asarray(picks, np.int64),
        scores=np.asarray(scores, np.float64),
        radius_before=radius_before,
        radius_after=float(np.sqrt(max(value, 0.0))),
        seconds={"initial_distances": t1 - t0, "greedy": t2 - t1},
        measured=sum(s.measured for s in shards),
        profile={**prof, "picks_per_pass": (len(picks) - (labeled.size == 0)) / max(prof["passes"], 1),
                 "pairs_screened": sum(getattr(s, "screened", 0) for s in shards),
                 "points_loose": sum(getattr(s, "loosened", 0) for s in shards),
                 "points_scanned_at_start": sum(getattr(s, "scanned", 0) for s in shards),
                 **groupsearch.start_profile(shards)},
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
    shard.start(np.asarray(x[centers], np.float32), gpu=distance.on_gpu(), loose=True)  # best() measures the top
    return float(np.sqrt(max(shard.best()[0], 0.0)))
