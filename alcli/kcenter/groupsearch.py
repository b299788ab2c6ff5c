"""Exact nearest-center search that prunes with ball bounds (the start of k-Center-Greedy).

`nearest_grouped` has `distance.nearest_exact`'s contract (exact float64 squared distance to the nearest
center, the lowest center index among exact ties), but multiplies far fewer (point, center) pairs on
clustered data: the centers are put into groups, each a ball (centroid q_g, radius R_g ≥ every member's
exact distance to q_g). One float32 product of the points with the m centroids, lowered by the rigorous
error bound `distance.expansion_tolerance`, gives |x - q_g| from below and so a lower bound
(|x - q_g| - R_g)² on every member of g. A point first meets the members of its nearest centroid's group
(float32 product, per-pair bound): U_x = min(f + tol) ≥ its exact distance. Every other group is visited
only by the points whose group bound is ≤ U_x (which shrinks as groups are visited); the pairs with
f - tol ≤ U_x are measured exactly in float64. No step rounds in the pruning's favour, so the result is
the brute force's, bit for bit.

When pruning does not pay (small k, a GPU, points spread evenly so most pairs get visited) the FAISS
path (`distance.nearest_exact`) answers instead; the switch is checked after every block of points (the
first one small).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from alcli.kcenter import distance

MIN_CENTERS = 256  # fewer centers: a full product is cheap, FAISS answers
VISIT_LIMIT = 0.15  # (point, center) pairs multiplied, a fraction of a block's: above, FAISS does the rest (a
# visited pair costs ~5x a FAISS one: measured 1.2x faster at 9%, 5x slower at 94%)
MIN_WORK = 1e10  # points × centers × d below this: FAISS' product takes well under a second anyway
PROBE_ROWS = 1024  # the first block is small: where pruning fails, little is lost before FAISS takes over
GROUP_FACTOR = 2.0  # m ≈ GROUP_FACTOR·sqrt(k) groups, but at least MIN_GROUPS (when k/8 allows):
MIN_GROUPS = 128  # fewer groups than the data's modes merge modes into wide balls that prune nothing
_BLOCK_BYTES = 96 << 20  # scratch of one block's (points × groups) arrays (reused)
_POINTS_BYTES = 32 << 20  # one block's points (float32), gathered
_LLOYD_STEPS = 3


def center_groups(u: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the centers u (k×d float32) into at most m groups: farthest-first pivots over an evenly spaced
    sample, a few float32 Lloyd steps over all centers, each group's mean rounded to float32 as its ball
    center. Returns (group of each center, ball centers g×d float32, radii g float64 ≥ the exact distance
    of every member to its ball center). Only the radii must be rigorous; the grouping only decides speed."""
    k, d = u.shape
    m = max(1, min(m, k))
    sample = u[:: max(1, k // (8 * m))]
    sn = np.einsum("ij,ij->i", sample, sample, dtype=np.float64)
    first = int(np.argmax(sn - 2.0 * (sample @ sample.mean(axis=0, dtype=np.float64).astype(np.float32))))
    pivots = [first]
    near = np.full(sample.shape[0], np.inf)
    for _ in range(m - 1):
        p = sample[pivots[-1]]
        np.minimum(near, sn + float(p @ p) - 2.0 * (sample @ p), out=near)
        near[pivots] = -1.0
        pivots.append(int(np.argmax(near)))
    q = np.ascontiguousarray(sample[np.unique(pivots)])
    for _ in range(_LLOYD_STEPS + 1):
        qn = np.einsum("ij,ij->i", q, q, dtype=np.float64)
        label = np.empty(k, np.int64)
        rb = max(1, (8 << 20) // (8 * q.shape[0]))
        for s in range(0, k, rb):
            label[s : s + rb] = np.argmin(qn[None, :] - 2.0 * (u[s : s + rb] @ q.T), axis=1)
        used, label = np.unique(label, return_inverse=True)
        sums = _group_sums(u, label, used.size)
        q = (sums / np.bincount(label, minlength=used.size)[:, None]).astype(np.float32)
    d2 = distance.sqdist_pairs(u, np.arange(k), q, label)
    radius = np.zeros(q.shape[0], np.float64)
    np.maximum.at(radius, label, d2)
    return label, q, np.sqrt(radius) * (1 + 1e-9)  # float64 rounding of d2 and sqrt: relative ≤ (d+2)·2^-53


def _group_sums(u: np.ndarray, label: np.ndarray, g: int) -> np.ndarray:
    """Sum of the rows of u in each of g groups, as a one-hot float32 product block by block (the same
    work as one Lloyd step's assignment; numpy's reduceat over gathered float64 rows cost 3x more). The
    sums only place the groups' means: the radii are measured exactly afterwards."""
    sums = np.zeros((g, u.shape[1]), np.float64)
    step = distance.block_rows(max(u.shape[1], g))
    for s in range(0, label.size, step):
        lab = label[s : s + step]
        onehot = np.zeros((g, lab.size), np.float32)
        onehot[lab, np.arange(lab.size)] = 1.0
        sums += onehot @ np.asarray(u[s : s + step], np.float32)
    return sums


def nearest_grouped(
    x: np.ndarray, rows: np.ndarray, centers: np.ndarray, gpu: bool = False, k: int = 8,
    groups: int | None = None, loose: bool = False, _force: bool = False, _block: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """`distance.nearest_exact`'s answer (s, nearest, counters with "norms"), by the grouped search where it
    pays and FAISS where not. Extra counters: "method" ("grouped", "faiss", or "grouped+faiss" when the
    guard switched after some blocks), "groups", "group_visits" (visited (point, group) pairs / all) and
    "pairs_visited" ((point, center) pairs multiplied / all), both over the points the grouped search did.
    `loose`: a point left with one candidate center after the pruning (every other center is certainly
    farther) keeps that center without a float64 measurement: s holds an upper bound, counts["lo"] a lower
    bound and counts["loose"] marks those points (`GreedyShard` measures them when a decision needs it).
    `_force` (tests, bench) takes the grouped path whatever k, the device or the visited fraction; `_block`
    (tests) sets the points a block."""
    first = distance.unique_rows(centers)
    u = centers if first.size == centers.shape[0] else np.ascontiguousarray(centers[first])
    kk = u.shape[0]
    m = groups or max(1, int(round(GROUP_FACTOR * np.sqrt(kk))), min(MIN_GROUPS, kk // 8))
    if not _force and (gpu or kk < MIN_CENTERS or rows.size * kk * u.shape[1] < MIN_WORK):
        s, near, counts = distance.nearest_exact(x, rows, centers, gpu=gpu, k=k)
        return s, near, {**counts, "method": "faiss", "groups": 0, "group_visits": 0.0, "pairs_visited": 1.0}
    with threadpool_limits(limits=1, user_api="blas"):
        label, q, radius = center_groups(np.asarray(u, np.float32), m)
    order = np.argsort(label, kind="stable")
    ug = np.ascontiguousarray(u[order], np.float32)  # members of a group are a contiguous slice
    cut = np.r_[0, np.cumsum(np.bincount(label, minlength=q.shape[0]))]
    cn = np.sqrt(distance.sqnorms(ug))
    search = _Search(ug, cn, cut, q, radius)
    d = u.shape[1]
    # an eighth of the points at most: on a small pool the scratch stays small beside the features (peak ≤ 2×)
    block = _block or int(np.clip(min(_BLOCK_BYTES // (12 * q.shape[0]), _POINTS_BYTES // (4 * d), rows.size // 8),
                                  2048, 1 << 16))
    s = np.empty(rows.size, np.float64)
    near = np.empty(rows.size, np.int64)
    norms = np.empty(rows.size, np.float64)
    counts = {"pairs_measured": 0, "points_scanned": 0, "norms": norms, "method": "grouped",
              "groups": int(q.shape[0])}
    if loose:
        counts["loose"] = np.zeros(rows.size, bool)
        counts["lo"] = np.zeros(rows.size, np.float64)
    done = 0
    while done < rows.size:
        part = rows[done : done + (block if done else min(block, PROBE_ROWS))]
        visits = search.pair_visits
        xb, at = distance.rows_block(x, part, 8, np.float32)
        pn2 = distance.sqnorms(xb)
        pi, cj, low, upper = search.block(xb, pn2)
        xi = pi  # rows of xb
        if at is not None:  # xb is a run of x with a few rows that are not ours: drop their pairs
            ours = np.full(xb.shape[0], -1)
            ours[at] = np.arange(part.size)
            keep = ours[pi] >= 0
            xi, cj, low = pi[keep], cj[keep], low[keep]
            pi = ours[xi]
            pn2, upper = pn2[at], upper[at]
        norms[done : done + part.size] = np.sqrt(pn2)
        if loose:  # one candidate left: certainly the nearest (strictly), bounds instead of a measurement
            one = np.bincount(pi, minlength=part.size)[pi] == 1
            at = done + pi[one]
            s[at], near[at] = upper[pi[one]], first[order[cj[one]]]
            counts["lo"][at] = np.maximum(low[one], 0.0)
            counts["loose"][at] = True
            pi, xi, cj = pi[~one], xi[~one], cj[~one]
        d2 = distance.sqdist_pairs(xb, xi, ug, cj)
        owner, s_blk, c_blk = _lowest_min(pi, order[cj], d2)
        s[done + owner] = s_blk
        near[done + owner] = first[c_blk]
        counts["pairs_measured"] += int(pi.size)
        done += part.size
        if not _force and done < rows.size and search.pair_visits - visits > VISIT_LIMIT * part.size * kk:
            search.release()  # the FAISS path needs the memory: this search's scratch and centers go first
            xb = ug = d2 = pi = cj = low = upper = None
            rest = distance.nearest_exact(x, rows[done:], centers, gpu=gpu, k=k)
            s[done:], near[done:], norms[done:] = rest[0], rest[1], rest[2]["norms"]
            counts["pairs_measured"] += rest[2]["pairs_measured"]
            counts["points_scanned"] += rest[2]["points_scanned"]
            counts["method"] = "grouped+faiss"
            break
    counts["group_visits"] = search.group_visits / max(1, done * q.shape[0])
    counts["pairs_visited"] = search.pair_visits / max(1, done * kk)
    return s, near, counts


def _lowest_min(owner: np.ndarray, ids: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per owner present (ascending): the owner, its smallest d2 and the lowest id among its ties."""
    if owner.size == 0:
        return owner, d2, ids
    o = np.lexsort((ids, d2, owner))
    head = o[np.r_[0, np.flatnonzero(np.diff(owner[o])) + 1]]
    return owner[head], d2[head], ids[head]


class _Search:
    """Ball bounds over grouped centers; `block` returns the (point, center) pairs that must be measured."""

    def __init__(self, ug: np.ndarray, cn: np.ndarray, cut: np.ndarray, q: np.ndarray, radius: np.ndarray) -> None:
        self.ug, self.cn, self.cut, self.q, self.radius = ug, cn, cut, q, radius
        self.cn2 = cn * cn
        self.qn = np.sqrt(distance.sqnorms(q))
        self.qn2 = self.qn * self.qn
        self.half_qn2 = (self.qn2 / 2).astype(np.float32)
        self.scale = float(self.qn.max() + radius.max())
        self.b = ((self.qn2 - radius * radius * (1 + 1e-11)) / 2).astype(np.float32)
        self.r32 = radius.astype(np.float32)
        self.d = ug.shape[1]
        self.group_visits = 0
        self.pair_visits = 0
        self.qt = np.ascontiguousarray(q.T)
        self._buf: np.ndarray | None = None

    def release(self) -> None:
        """Drop the scratch and the sorted centers (the counters stay)."""
        self._buf = None
        self.ug = None  # type: ignore[assignment]

    def block(self, xb: np.ndarray, pn2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Candidate pairs (point index into xb, center index into ug; every point has at least one), their
        lower bounds (float32 value - error bound), and each point's upper bound on its nearest distance."""
        n = xb.shape[0]
        pn = np.sqrt(pn2)
        if self._buf is None or self._buf.shape[1] < n * self.q.shape[0]:  # reused: fresh pages cost a fault each
            self._buf = np.empty((2, n * self.q.shape[0]), np.float32)
        dots = np.matmul(xb, self.qt, out=self._buf[0, : n * self.q.shape[0]].reshape(n, -1))  # points × groups
        work = np.subtract(dots, self.half_qn2[None, :], out=self._buf[1, : n * self.q.shape[0]].reshape(n, -1))
        nearest = np.argmax(work, axis=1)  # nearest centroid by float32 value: its group is visited first
        upper = np.full(n, np.inf)
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        by_group = np.argsort(nearest, kind="stable")
        heads = np.searchsorted(nearest[by_group], np.arange(self.q.shape[0] + 1))
        with threadpool_limits(limits=1, user_api="blas"):  # small products: threads only wait on a busy box
            for g in np.flatnonzero(np.diff(heads)):
                found.append(self._visit(xb, pn, pn2, by_group[heads[g] : heads[g + 1]], g, upper))
            may = self._prefilter(dots, pn, pn2, upper, work)
            may[np.arange(n), nearest] = False
            mp, mg = distance.nonzero2(may)  # few: the pairs the ball test may pass
            by = np.argsort(mg, kind="stable")
            mp, mg = mp[by], mg[by]
            cuts = np.searchsorted(mg, np.arange(self.q.shape[0] + 1))
            for g in np.flatnonzero(np.diff(cuts)):
                pts = mp[cuts[g] : cuts[g + 1]]
                lo = pn2[pts] + self.qn2[g] - 2.0 * dots[pts, g].astype(np.float64)
                lo -= distance.expansion_tolerance(self.d, pn[pts], self.qn[g])
                lo = np.maximum(np.sqrt(np.maximum(lo, 0.0)) * (1 - 1e-12) - self.radius[g], 0.0)  # ≤ |x - q_g| - R_g
                pts = pts[lo * lo <= upper[pts]]  # a member of g can be no nearer than lo²: visit only if ≤ U_x
                if pts.size:
                    found.append(self._visit(xb, pn, pn2, pts, g, upper))
        pi = np.concatenate([f[0] for f in found])
        cj = np.concatenate([f[1] for f in found])
        low = np.concatenate([f[2] for f in found])
        keep = low <= upper[pi]
        return pi[keep], cj[keep], low[keep], upper

    def _prefilter(self, dots: np.ndarray, pn: np.ndarray, pn2: np.ndarray, upper: np.ndarray,
                   out: np.ndarray) -> np.ndarray:
        """Points × groups mask, in float32, true wherever the float64 ball test in `block` can pass.

        That test passes only if fq - tol ≤ (R_g + √U)²·(1+3e-12), fq = |x|²+|q|²-2·dot, i.e. only if
        dot ≥ a_x + b_g - c_x·R_g with a_x = (|x|² - tol_max - U(1+1e-11))/2, b_g = (|q|² - R_g²(1+1e-11))/2,
        c_x = √U(1+1e-11); a_x is lowered by 1e-5·(|x| + max|q| + max R + √U)², far above the float32
        rounding of the three terms and two operations."""
        su = np.sqrt(upper)
        tol = distance.expansion_tolerance(self.d, pn, float(self.qn.max()))
        a = (pn2 - tol - upper * (1 + 1e-11)) / 2 - 1e-5 * (pn + self.scale + su) ** 2
        np.multiply((su * (1 + 1e-11)).astype(np.float32)[:, None], self.r32[None, :], out=out)
        np.subtract(self.b[None, :], out, out=out)
        out += a.astype(np.float32)[:, None]
        return dots >= out

    def _visit(self, xb: np.ndarray, pn: np.ndarray, pn2: np.ndarray, pts: np.ndarray, g: int,
               upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float32 products of xb[pts] with group g's members ± their bound: lowers `upper`, returns the
        pairs whose lower value is within it (pairs kept: point, center, lower value)."""
        a, b = int(self.cut[g]), int(self.cut[g + 1])
        f = pn2[pts, None] + self.cn2[None, a:b] - 2.0 * (xb[pts] @ self.ug[a:b].T)
        tol = distance.expansion_tolerance(self.d, pn[pts, None], self.cn[None, a:b])
        upper[pts] = np.minimum(upper[pts], (f + tol).min(axis=1))
        f -= tol
        i, j = distance.nonzero2(f <= upper[pts, None])
        self.group_visits += pts.size
        self.pair_visits += pts.size * (b - a)
        return pts[i], j + a, f[i, j]


def start_info(counts: dict) -> dict:
    """The counters of one search that a k-Center-Greedy profile reports (see `start_profile`)."""
    faiss_only = {"method": "faiss", "groups": 0, "group_visits": 0.0, "pairs_visited": 1.0}
    return {key: counts.get(key, faiss_only[key]) for key in faiss_only} | {"points": int(counts["norms"].size)}


def start_profile(shards: Sequence[object]) -> dict[str, float | str]:
    """Profile entries of the starts of `shards`: the method(s) taken, the groups, and the visited
    (point, group) and (point, center) fractions, averaged over the points."""
    infos = [info for info in (getattr(shard, "start_info", None) for shard in shards) if info]
    if not infos:
        return {}
    points = max(1, sum(info["points"] for info in infos))
    return {"start": "+".join(sorted({info["method"] for info in infos})),
            "start_groups": max(info["groups"] for info in infos),
            "start_group_visits": sum(info["group_visits"] * info["points"] for info in infos) / points,
            "start_pairs_visited": sum(info["pairs_visited"] * info["points"] for info in infos) / points}
