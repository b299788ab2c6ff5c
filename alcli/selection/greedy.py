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
  data one pass proves ~50-60 picks, so the per-pass costs below are paid ~50× less often.
- Triangle test: every point keeps its nearest center a(i) and the exact squared distance s_i. A new
  center c at D = |c_a(i) - c| can only get closer when D² < 4·s_i; D² to every existing center and
  every new center of the pass comes from one float32 matrix product over the centers, lowered by a
  rigorous error bound.
- Screen: the surviving (point, new center) pairs get float32 distances from one product over the
  gathered rows, with the rigorous bound γ(|x|+|c|)²; only pairs that could be a point's new nearest
  are measured exactly in float64.

`GreedyShard` holds a subset of the points and does all per-point work; `kcenter_greedy` drives one
or more shards and returns a profile (passes, picks a pass, pairs screened and measured, seconds in the
argmax/plan, the center bounds and the folds). A distributed run gives each worker one shard.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from alcli import distance, groupsearch


class GreedyShard:
    """Per-point state of one shard: x[rows[i]] has global position positions[i] (ascending)."""

    batched = True  # offers top() and apply(): several picks a pass

    def __init__(self, x: np.ndarray, rows: np.ndarray, positions: np.ndarray) -> None:
        self.x = x
        self.rows = np.asarray(rows, np.int64)
        self.positions = np.asarray(positions, np.int64)
        m = self.rows.shape[0]
        self.s = np.full(m, -1.0)  # exact squared distance to the nearest center; -1 = is a center
        self.thr = np.full(m, -np.inf)  # 4·s·(1+ε): a new center at D² >= thr cannot help
        self.assign = np.zeros(m, np.int32)
        self.measured = 0  # (point, center) pairs measured exactly, for the report
        self.screened = 0  # pairs screened by the float32 product with its rigorous error bound
        self.scanned = 0  # points whose start needed the exact scan of all centers
        self.norms: np.ndarray | None = None  # |x| of each point (float64), for the float32 screen
        # Loose points: s holds an upper bound, lo a lower bound, and assign the center that is certainly the
        # nearest; the exact value, |x - that center|², is measured only when a decision needs it.
        self.loose: np.ndarray | None = None
        self.lo: np.ndarray | None = None
        self.nloose = 0
        self.loosened = 0  # points made loose (a measurement saved each), for the report
        self.cvec = np.empty((0, x.shape[1]), np.float32)  # vectors of centers cbase, cbase+1, ... (apply())
        self.cbase = 0
        self.ckept = 0

    start_method = "auto"  # "grouped" (ball-pruned search), "faiss" (distance.nearest_exact) or "auto"

    def start(self, centers: np.ndarray, gpu: bool = False, neighbours: int = 8) -> None:
        """Nearest of `centers` (k×d float32), exactly, for every point (`groupsearch.nearest_grouped`:
        ball-pruned where it pays, else `distance.nearest_exact`)."""
        if self.rows.size == 0:
            return
        if self.start_method == "faiss":
            s, near, counts = distance.nearest_exact(self.x, self.rows, centers, gpu=gpu, k=neighbours)
        else:
            s, near, counts = groupsearch.nearest_grouped(self.x, self.rows, centers, gpu=gpu, k=neighbours,
                                                          _force=self.start_method == "grouped")
        self.start_info = groupsearch.start_info(counts)
        self.s = s
        self.norms = counts.pop("norms")
        self.assign = near.astype(np.int32)
        self.measured += counts["pairs_measured"]
        self.scanned += counts["points_scanned"]
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
        self._settle_above(1)
        i = int(np.argmax(self.s))
        return float(self.s[i]), int(self.positions[i]) if self.s[i] >= 0 else -1

    def take(self, position: int) -> np.ndarray | None:
        """Mark the point at `position` as a center; return its vector (None if not in this shard)."""
        i = int(np.searchsorted(self.positions, position))
        if i >= self.positions.size or self.positions[i] != position:
            return None
        self.s[i] = -1.0
        self.thr[i] = -np.inf
        if self.loose is not None and self.loose[i]:
            self.loose[i] = False
            self.nloose -= 1
        return np.asarray(self.x[self.rows[i]])

    def add_center(self, center: np.ndarray, center_id: int, lower: np.ndarray) -> None:
        """Fold in a new center; lower[j] <= |c_j - center|² for every existing center j."""
        self.apply(np.full(1, -1, np.int64), np.asarray(center, np.float32)[None, :], center_id, lower[:, None])

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The k farthest points (squared distance descending, then lowest position), their positions and
        vectors, and a bound: no other point is farther than it (-1 when none is left)."""
        self._settle_above(k + 1)
        s = self.s  # centers hold -1: they sort last
        if s.size > k + 1:
            cut = max(float(s[np.argpartition(-s, k)[: k + 1]].min()), 0.0)
            part = np.flatnonzero(s >= cut)  # every point tied with the cut: the order below is total
        else:
            part = np.flatnonzero(s >= 0)
        order = part[np.lexsort((self.positions[part], -s[part]))]
        top, rest = order[:k], order[k:]
        bound = float(s[rest[0]]) if rest.size else -1.0
        return self.s[top].copy(), self.positions[top].copy(), np.asarray(self.x[self.rows[top]], np.float32), bound

    def settle(self, idx: np.ndarray | None = None) -> None:
        """Measure the exact distance of the loose points among idx (all when None)."""
        if not self.nloose:
            return
        idx = np.flatnonzero(self.loose) if idx is None else idx[self.loose[idx]]
        if idx.size == 0:
            return
        idx = np.unique(idx)
        d2 = distance.sqdist_pairs(self.x, self.rows[idx], self.cvec, self.assign[idx] - self.cbase)
        self.s[idx] = d2
        self.thr[idx] = 4.0 * d2 * (1 + 1e-9)
        self.loose[idx] = False
        self.nloose -= idx.size
        self.measured += int(idx.size)

    def _settle_above(self, k: int) -> None:
        """Make exact every loose point that could be among the k largest distances."""
        if not self.nloose:
            return
        lo = np.where(self.loose, self.lo, self.s)
        cut = -np.inf if lo.size <= k else float(np.partition(lo, lo.size - k)[lo.size - k])
        self.settle(np.flatnonzero(self.s >= cut))

    def _remember(self, centers: np.ndarray, first_id: int) -> bool:
        """Keep the new centers' vectors while loose points may refer to them (they are measured against
        them later); False when the ids do not follow the kept ones (then nothing is made loose)."""
        if not self.nloose:
            self.cbase, self.ckept = first_id, 0
        if first_id != self.cbase + self.ckept:
            return False
        m = centers.shape[0]
        if self.ckept + m > self.cvec.shape[0]:
            grown = np.empty((max(2 * self.cvec.shape[0], self.ckept + m, 64), centers.shape[1]), np.float32)
            grown[: self.ckept] = self.cvec[: self.ckept]
            self.cvec = grown
        self.cvec[self.ckept : self.ckept + m] = centers
        self.ckept += m
        return True

    def apply(self, positions: np.ndarray, centers: np.ndarray, first_id: int, lower: np.ndarray) -> dict[int, float]:
        """Fold in new centers (m×d float32, ids first_id, first_id+1, ...) that were picked in this order,
        with lower[j, t] <= |c_j - centers[t]|² for every existing center j. The state afterwards is the
        one m single steps give. Returns {position: distance² when picked} for the picks this shard owns.

        A point can only get closer to a new center if that center is nearer than twice its distance to
        its own (triangle inequality); the survivors are screened by one float32 product with a rigorous
        error bound, and only pairs that could lower a distance are measured exactly in float64."""
        scores: dict[int, float] = {}
        if self.nloose and positions.size:
            self.settle(np.clip(np.searchsorted(self.positions, positions), 0, max(self.positions.size - 1, 0)))
        for t, pos in enumerate(positions.tolist()):
            i = int(np.searchsorted(self.positions, pos))
            if i < self.positions.size and self.positions[i] == pos:
                value = float(self.s[i])
                if t:  # the earlier picks of this batch, exactly as single steps would have folded them
                    earlier = distance.sqdist_exact(centers[:t], self.x[self.rows[i]].astype(np.float64))
                    value = min(value, float(earlier.min()))
                scores[int(pos)] = value
                self.s[i] = -1.0
                self.thr[i] = -np.inf
        if self.rows.size == 0 or lower.shape[0] == 0:
            return scores
        survivors = np.flatnonzero(self.thr > lower.min(axis=1)[self.assign])
        if survivors.size and self.norms is None:
            self.norms = np.sqrt(distance.sqnorms_rows(self.x, self.rows))
        cn = np.sqrt(distance.sqnorms(centers))
        step = max(64, (8 << 20) // (4 * centers.shape[1] + 40 * centers.shape[0]))  # ~8 MB of scratch a block
        dense = survivors.size > 0.25 * self.rows.size  # early passes: the triangle test prunes little
        kept = (dense or self.nloose > 0) and self._remember(centers, first_id)
        lazy = dense and kept
        for start in range(0, survivors.size, step):
            block = survivors[start : start + step]
            if dense:
                self._fold_dense(block, centers, cn, first_id, lazy)
            else:
                self._fold(block, centers, cn, first_id, lower)
        return scores

    def _fold_dense(self, idx: np.ndarray, centers: np.ndarray, cn: np.ndarray, first_id: int, lazy: bool) -> None:
        """Points idx against every new center, in float32 (|x|²+|c|²-2x·c, as FAISS computes it) with one
        rigorous bound per point, γ(|x|+max|c|)²; the pairs that could be a new nearest are measured.
        lazy: a point whose best new center is certainly nearer than its own distance and than every other new
        center just takes it, loose (bounds, no measurement). Laid out centers × points, so that the
        per-point minima are elementwise over rows, not short reductions."""
        rows = self.rows[idx]
        if rows[-1] - rows[0] == rows.size - 1:  # rows ascending and unique: a run is a view, not a copy
            xb = np.asarray(self.x[rows[0] : rows[-1] + 1])
        else:
            xb = np.asarray(self.x[rows])
        pn = self.norms[idx]
        fl = centers @ xb.T
        fl *= np.float32(-2.0)
        fl += (pn * pn).astype(np.float32)[None, :]
        fl += (cn * cn).astype(np.float32)[:, None]
        tol = distance.expansion_tolerance(centers.shape[1], pn, float(cn.max()))
        self.screened += int(fl.size)
        f1 = fl.min(axis=0).astype(np.float64)
        if lazy:
            keep = self._take_sure(idx, fl, f1, tol, first_id)
            if not keep.any():
                return
            if not keep.all():
                idx, xb, fl, f1, tol = idx[keep], xb[keep], fl[:, keep], f1[keep], tol[keep]
        lim = np.minimum(f1 + 2 * tol, self.s[idx] + tol)  # float64: a best, and an improvement
        lim *= 1 + 2.0**-20  # covers rounding the limit to float32 (relative 2^-24) for the comparison
        tj, pi = np.nonzero(fl <= lim.astype(np.float32)[None, :])
        if pi.size:
            self._measure(xb, idx, pi, tj, centers, first_id)

    def _take_sure(self, idx: np.ndarray, fl: np.ndarray, f1: np.ndarray, tol: np.ndarray, first_id: int) -> np.ndarray:
        """Points whose best new center is nearer than their own distance and than every other new center by
        more than the error bounds become loose at it. fl: centers × points, f1 its column minima. Returns
        a mask of the points that still could get closer (to fold exactly)."""
        j = np.argmin(fl, axis=0)
        cols = np.arange(fl.shape[1])
        if fl.shape[0] > 1:
            best = fl[j, cols]
            fl[j, cols] = np.inf  # the runner-up: the minimum without the best (put back below)
            f2 = fl.min(axis=0).astype(np.float64)
            fl[j, cols] = best
        else:
            f2 = np.full(fl.shape[1], np.inf)
        if self.loose is None:
            self.loose = np.zeros(self.s.size, bool)
            self.lo = np.zeros(self.s.size)
        own_lo = np.where(self.loose[idx], self.lo[idx], self.s[idx])
        hi = f1 + tol
        sure = (hi < own_lo) & (hi < f2 - tol)
        at = idx[sure]
        if at.size:
            self.nloose += int(at.size - np.count_nonzero(self.loose[at]))
            self.loosened += int(at.size)
            self.loose[at] = True
            self.s[at] = hi[sure]
            self.lo[at] = np.maximum(f1[sure] - tol[sure], 0.0)
            self.assign[at] = first_id + j[sure]
            self.thr[at] = 4.0 * hi[sure] * (1 + 1e-9)
        return ~sure & (f1 - tol < self.s[idx])

    def _fold(self, idx: np.ndarray, centers: np.ndarray, cn: np.ndarray, first_id: int, lower: np.ndarray) -> None:
        """Points idx against the new centers: float32 distances ± their rigorous bound; only the pairs that
        could be a point's new nearest (below its distance, and within the bound of its best) are measured."""
        pi, tj = np.nonzero(self.thr[idx, None] > lower[self.assign[idx]])
        if pi.size == 0:
            return
        self.screened += int(pi.size)
        xb = np.asarray(self.x[self.rows[idx]])
        dots = xb @ centers.T
        pn, c = self.norms[idx[pi]], cn[tj]
        fl = pn * pn + c * c - 2.0 * dots[pi, tj]
        tol = distance.expansion_tolerance(centers.shape[1], pn, c)
        heads = np.r_[0, np.flatnonzero(np.diff(pi)) + 1]  # pairs come grouped by point
        upper = np.minimum.reduceat(fl + tol, heads)
        fl -= tol
        keep = (fl < self.s[idx[pi]]) & (fl <= np.repeat(upper, np.diff(np.r_[heads, pi.size])))
        pi, tj = pi[keep], tj[keep]
        if pi.size:
            self._measure(xb, idx, pi, tj, centers, first_id)

    def _measure(self, xb: np.ndarray, idx: np.ndarray, pi: np.ndarray, tj: np.ndarray, centers: np.ndarray,
                 first_id: int) -> None:
        """Exact float64 distances of the pairs (xb[pi], centers[tj]); fold in those that lower a distance."""
        self.settle(idx[pi])  # an improvement is decided against the exact distance
        d2 = distance.sqdist_pairs(xb, pi, centers, tj)
        self.measured += int(pi.size)
        better = d2 < self.s[idx[pi]]
        pi, tj, d2 = pi[better], tj[better], d2[better]
        if pi.size == 0:
            return
        order = np.lexsort((tj, d2, pi))  # per point its nearest new center, the earliest on ties
        head = order[np.r_[0, np.flatnonzero(np.diff(pi[order])) + 1]]
        at = idx[pi[head]]
        self.s[at] = d2[head]
        self.assign[at] = first_id + tj[head]
        self.thr[at] = 4.0 * d2[head] * (1 + 1e-9)


@dataclass
class GreedyResult:
    picks: np.ndarray  # positions in pick order
    scores: np.ndarray  # each pick's distance to its nearest center when it was picked (l2)
    radius_before: float | None
    radius_after: float
    seconds: dict[str, float] = field(default_factory=dict)
    measured: int = 0
    profile: dict[str, float] = field(default_factory=dict)  # passes, picks a pass, seconds per part


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


MARGIN = 1e-9  # relative: a pick after the first of a batch needs this lead over every rival


def plan(vals: np.ndarray, pos: np.ndarray, vecs: np.ndarray, bound: float, room: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of the reported farthest points are the greedy's next picks, and their distances² when picked.

    vals/pos/vecs: the farthest points of every shard (squared distance, position, vector); bound: no
    unreported point is farther. The first pick is the exact reduce (largest, then lowest position); each
    further one only if, after folding in the picks so far (exact float64 distances), it beats every other
    reported point and the bound by a relative margin far above rounding — so the picks are the ones
    single steps make, several per pass over the points."""
    if pos.size == 0 or room <= 0:
        return np.zeros(0, np.int64), np.zeros(0)
    vals = vals.astype(np.float64)
    first = int(np.lexsort((pos, -vals))[0])
    chosen, values = [first], [float(vals[first])]
    # Only points above the bound can ever be picked (values only fall), and one at or below it can never be
    # the runner-up that blocks a pick (a pick must beat the bound by the margin anyway): drop them, so each
    # step folds the new pick into the live rivals only.
    vals[first] = -1.0
    live = np.flatnonzero(vals > bound)
    lv, lvec = vals[live], np.asarray(vecs[live], np.float64)
    while len(chosen) < room and live.size:
        i = chosen[-1]
        np.minimum(lv, distance.sqdist_exact(lvec, np.asarray(vecs[i], np.float64)), out=lv)
        keep = lv > bound
        live, lv, lvec = live[keep], lv[keep], lvec[keep]
        if live.size == 0:
            break
        order = np.argsort(-lv, kind="stable")[:2]
        v1 = lv[order[0]]
        v2 = lv[order[1]] if order.size > 1 else -np.inf
        if not (v1 > bound * (1 + MARGIN) and v1 > v2 * (1 + MARGIN)):
            break
        chosen.append(int(live[order[0]]))
        values.append(float(v1))
        lv[order[0]] = -1.0  # picked: the next fold drops it
    return np.asarray(chosen, np.int64), np.asarray(values)


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
    top_k: int = 64,
    _start: str | None = None,
) -> GreedyResult:
    """Pick `budget` of `candidates` (sorted positions into x) greedily given centers x[labeled].

    With no labelled points the first pick is the candidate farthest from the candidates' mean."""
    t0 = time.perf_counter()
    d = x.shape[1]
    gpu = distance.on_gpu()
    if shards is None:  # features on disk (alcli.outofcore) come in shards: bounded scratch per shard
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
    prof = {"passes": 0, "bounds_s": 0.0, "fold_s": 0.0, "argmax_s": 0.0}
    batched = all(getattr(shard, "batched", False) for shard in shards)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        while len(picks) < budget:
            ta = time.perf_counter()
            if batched:
                tops = [shard.top(top_k) for shard in shards]
                vals = np.concatenate([t[0] for t in tops])
                pos = np.concatenate([t[1] for t in tops])
                vecs = np.concatenate([t[2] for t in tops])
                chosen, values = plan(vals, pos, vecs, max(t[3] for t in tops), budget - len(picks))
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
            lower = bounds.lower_many(new_vecs)
            center_id = bounds.k
            bounds.add(new_vecs)
            tc = time.perf_counter()
            for shard in shards:
                if batched:
                    shard.apply(new_pos, new_vecs, center_id, lower)
                else:
                    shard.add_center(new_vecs[0].astype(np.float64), center_id, lower[:, 0])
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
    shard.start(np.asarray(x[centers], np.float32), gpu=distance.on_gpu())
    return float(np.sqrt(max(shard.best()[0], 0.0)))
