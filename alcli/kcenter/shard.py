"""The per-point state of k-Center-Greedy: a `GreedyShard` holds a subset of the points, each with its
nearest center and exact squared distance, and folds in new centers (see `alcli.kcenter.greedy` for the
algorithm and the bounds that make it exact). A distributed run gives each worker one shard; the CUDA
shard (`greedy_torch`) subclasses it.

Loose points: a point keeps its nearest center without a float64 measurement when the float32 error
bounds alone settle it — at the start, when the ball pruning leaves it one candidate labelled center
(`groupsearch.nearest_grouped`), and in a dense fold (early passes, when the triangle test prunes little),
when its best new center is nearer than its own distance and than every other new center by more than the
bounds. It keeps an upper and a lower bound; its exact distance is measured only when a decision needs
it (the top of the argmax, a fold that could lower it).
"""

from __future__ import annotations

import numpy as np

from alcli.kcenter import distance, groupsearch


class GreedyShard:
    """Per-point state of one shard: x[rows[i]] has global position positions[i] (ascending)."""

    batched = True  # offers top() and apply(): several picks a pass
    pair_bounds = False  # apply() reads only lower.min(axis=1): CenterBounds.lower_nearest will do

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
        self.cstart: np.ndarray | None = None  # the start's centers (ids below cbase), when points are loose at them
        self.cbase = 0
        self.ckept = 0

    dense = False  # the last fold met most points (early passes): a driver then reports more rivals a pass
    start_method = "auto"  # "grouped" (ball-pruned search), "faiss" (distance.nearest_exact) or "auto"

    def start(self, centers: np.ndarray, gpu: bool = False, neighbours: int = 8, loose: bool = False) -> None:
        """Nearest of `centers` (k×d float32, ids 0..k-1) for every point (`groupsearch.nearest_grouped`:
        ball-pruned where it pays, else `distance.nearest_exact`). Exact, unless `loose`: then the points
        whose nearest center the pruning alone settles are loose at it (`centers` is kept, not copied, for
        their later measurement: the caller must not change it)."""
        if self.rows.size == 0:
            return
        if self.start_method == "faiss":
            s, near, counts = distance.nearest_exact(self.x, self.rows, centers, gpu=gpu, k=neighbours)
        else:
            s, near, counts = groupsearch.nearest_grouped(self.x, self.rows, centers, gpu=gpu, k=neighbours,
                                                          loose=loose, _force=self.start_method == "grouped")
        self.start_info = groupsearch.start_info(counts)
        self.s = s
        self.norms = counts.pop("norms")
        self.assign = near.astype(np.int32)
        self.measured += counts["pairs_measured"]
        self.scanned += counts["points_scanned"]
        self.thr = 4.0 * self.s * (1 + 1e-9)
        if "loose" in counts and counts["loose"].any():
            self.loose, self.lo = counts["loose"], counts["lo"]
            self.nloose = int(np.count_nonzero(self.loose))
            self.loosened += self.nloose
            self.cstart, self.cbase, self.ckept = centers, centers.shape[0], 0

    def start_single(self, center: np.ndarray) -> None:
        """All points measured against one first center (id 0)."""
        self.s = distance.sqdist_rows(self.x, self.rows, center)
        self.dense = True  # one center: the first folds meet most points
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
        ids = self.assign[idx].astype(np.int64) - self.cbase
        d2 = np.empty(idx.size)
        early = ids < 0  # loose at one of the start's centers
        if early.any():
            d2[early] = distance.sqdist_pairs(self.x, self.rows[idx[early]], self.cstart, ids[early] + self.cbase)
        later = ~early
        if later.any():
            d2[later] = distance.sqdist_pairs(self.x, self.rows[idx[later]], self.cvec, ids[later])
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
            self.cbase, self.ckept, self.cstart = first_id, 0, None
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

    def apply(self, positions: np.ndarray, centers: np.ndarray, first_id: int, lower: np.ndarray,
              scores: bool = True) -> dict[int, float]:
        """Fold in new centers (m×d float32, ids first_id, first_id+1, ...) that were picked in this order,
        with lower[j, t] <= |c_j - centers[t]|² for every existing center j (only each row's minimum is
        read, so a k×1 bound on the nearest new center, `CenterBounds.lower_nearest`, will do). The state
        afterwards is the one m single steps give. Returns {position: distance² when picked} for the picks
        this shard owns (empty when not `scores`: a driver that planned the picks knows them).

        A point can only get closer to a new center if that center is nearer than twice its distance to
        its own (triangle inequality); the survivors are screened against all new centers by one float32
        product with a rigorous error bound, and only pairs that could lower a distance are measured
        exactly in float64."""
        picked: dict[int, float] = {}
        if self.nloose and positions.size and scores:
            self.settle(np.clip(np.searchsorted(self.positions, positions), 0, max(self.positions.size - 1, 0)))
        for t, pos in enumerate(positions.tolist()):
            i = int(np.searchsorted(self.positions, pos))
            if i < self.positions.size and self.positions[i] == pos:
                if scores:
                    value = float(self.s[i])
                    if t:  # the earlier picks of this batch, exactly as single steps would have folded them
                        earlier = distance.sqdist_exact(centers[:t], self.x[self.rows[i]].astype(np.float64))
                        value = min(value, float(earlier.min()))
                    picked[int(pos)] = value
                if self.loose is not None and self.loose[i]:
                    self.loose[i] = False
                    self.nloose -= 1
                self.s[i] = -1.0
                self.thr[i] = -np.inf
        if self.rows.size == 0 or lower.shape[0] == 0:
            return picked
        survivors = np.flatnonzero(self.thr > lower.min(axis=1)[self.assign])
        if survivors.size and self.norms is None:
            self.norms = np.sqrt(distance.sqnorms_rows(self.x, self.rows))
        cn = np.sqrt(distance.sqnorms(centers))
        screen = (centers * np.float32(-2.0), (cn * cn).astype(np.float32), float(cn.max()))  # exact ×-2
        step = max(64, (8 << 20) // (4 * centers.shape[1] + 40 * centers.shape[0]))  # ~8 MB of scratch a block
        dense = survivors.size > 0.25 * self.rows.size  # early passes: the triangle test prunes little
        self.dense = dense
        kept = (dense or self.nloose > 0) and self._remember(centers, first_id)
        lazy = dense and kept
        for start in range(0, survivors.size, step):
            self._fold(survivors[start : start + step], centers, screen, first_id, lazy)
        return picked

    def _fold(self, idx: np.ndarray, centers: np.ndarray, screen: tuple[np.ndarray, np.ndarray, float],
              first_id: int, lazy: bool) -> None:
        """Points idx against every new center, in float32 with one rigorous bound per point,
        γ(|x|+max|c|)²; the pairs that could be a point's new nearest are measured exactly.

        The product gives g = |c|²-2c·x (float32; screen = (-2·centers, |c|², max|c|)), and |x|² is added
        per point in float64 — fl(g)+|x|² is within the same bound of |x-c|² as FAISS' |x|²+|c|²-2x·c.
        One comparison with each point's best g plus twice its bound yields every pair that could matter;
        a point with one such pair has a certain best new center.
        lazy: a point whose best new center is certainly nearer than its own distance (and than every other
        new center) just takes it, loose (bounds, no measurement). Laid out centers × points, so that the
        per-point minima are elementwise over rows, not short reductions. Points whose rows span a run of x
        at most a third longer are multiplied as that run (a view; the extra columns cost less than
        gathering the rows)."""
        c2, cn2, cmax = screen
        xb, at = distance.rows_block(self.x, self.rows[idx], 3)  # a run: a view, not a copy
        g = c2 @ xb.T
        if at is not None:
            g = g[:, at]
        g += cn2[:, None]
        pn = self.norms[idx]
        pn2 = pn * pn
        tol = distance.expansion_tolerance(centers.shape[1], pn, cmax)
        self.screened += int(g.size)
        g1 = g.min(axis=0).astype(np.float64)
        f1 = g1 + pn2  # ≥ the best new center's |x-c|² - tol
        tj, pi = distance.nonzero2(g <= distance.up32(g1 + 2 * tol)[None, :])  # every point's best among them
        if lazy:
            keep = self._take_sure(idx, tj, pi, f1, tol, first_id)
            if not keep.any():
                return
            tj, pi = tj[keep[pi]], pi[keep[pi]]
        lim = distance.up32(np.minimum(g1 + 2 * tol, self.s[idx] + tol - pn2))  # a best, and an improvement
        near = g[tj, pi] <= lim[pi]
        if near.any():
            pi, tj = pi[near], tj[near]
            self._measure(xb, idx, pi, pi if at is None else at[pi], tj, centers, first_id)

    def _take_sure(self, idx: np.ndarray, tj: np.ndarray, pi: np.ndarray, f1: np.ndarray, tol: np.ndarray,
                   first_id: int) -> np.ndarray:
        """Points whose best new center is nearer than their own distance and than every other new center by
        more than the error bounds become loose at it. (tj, pi): the pairs within each point's best plus
        twice its bound (a point with one such pair has no runner-up within that); f1: each point's best
        new center's computed distance² (within tol of the exact one). Returns a mask of the points that
        still could get closer (to fold exactly)."""
        count = np.bincount(pi, minlength=idx.size)
        j = np.empty(idx.size, np.int64)
        j[pi] = tj  # a point's only pair where count is 1
        if self.loose is None:
            self.loose = np.zeros(self.s.size, bool)
            self.lo = np.zeros(self.s.size)
        own_lo = np.where(self.loose[idx], self.lo[idx], self.s[idx])
        hi = f1 + tol
        sure = (count == 1) & (hi < own_lo)
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

    def _measure(self, xb: np.ndarray, idx: np.ndarray, pi: np.ndarray, xi: np.ndarray, tj: np.ndarray,
                 centers: np.ndarray, first_id: int) -> None:
        """Exact float64 distances of the pairs (point idx[pi] = xb[xi], centers[tj]); fold in those that
        lower a distance."""
        self.settle(idx[pi])  # an improvement is decided against the exact distance
        d2 = distance.sqdist_pairs(xb, xi, centers, tj)
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
