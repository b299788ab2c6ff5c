"""`kcenter-robust`: the paper's Algorithm 2 (robust k-Center) with the open CBC solver.

Start from exact k-Center-Greedy (δ_2opt), then bisect the covering radius δ between a lower bound and
the best radius achieved so far, deciding each δ with the set-cover-with-outliers model of
`cover_mip` (at most Ξ points may stay uncovered). After a feasible answer the upper bound becomes the
radius that answer actually achieves; an infeasible one is a proof that OPT > δ. Feasible covers often
need fewer than b centers: the rest are greedy picks given s0 and the cover's centers. The result is
never worse than greedy's: greedy is the incumbent and is kept when nothing better is found.

Radii here are "robust": the (Ξ+1)-th largest distance of a pool point to its nearest center, i.e. the
covering radius when the Ξ farthest points are left out. With Ξ = 0 it is the plain covering radius and
δ_2opt/2 is a certified lower bound (greedy is a 2-approximation); with Ξ > 0 the search starts at
half of greedy's robust radius as in the paper, and only infeasibility proofs certify a lower bound
(`--exact` searches all the way down instead and returns the optimum when it finishes).

Greedy is usually within a few percent of the optimum, so the first probe is just below greedy's radius
(2·gap, doubling while feasible) and plain bisection takes over at the first infeasible δ. Neighbour
lists are built lazily: only rows farther from s0 than the radii actually tested are ever searched.
--exact instead bisects over every exact pair distance from the paper's lower bound up (full lists).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from alcli import console
from alcli.errors import AlcliError
from alcli.kcenter import cover_mip, distance
from alcli.kcenter.greedy import kcenter_greedy
from alcli.kcenter.shard import GreedyShard
from alcli.selection.base import Param, Problem, Result, strategy

MAX_LISTED = 100  # outlier positions / iterations kept in the report (it is an HDF5 attribute)

PARAMS = (
    Param("outliers", int, None, "Ξ: points that may stay uncovered (default: --outlier-fraction × pool size)."),
    Param("outlier_fraction", float, None, "Ξ as a fraction of the pool, rounded down (default 1e-4 as the paper)."),
    Param("time_limit", float, 600.0, "Overall seconds; when spent, the best set found so far is returned."),
    Param("solve_time_limit", float, 60.0, "Seconds per CBC solve; a timed-out solve proves nothing."),
    Param("gap", float, 0.01, "Stop when (radius - lower bound) / radius is at most this."),
    Param("exact", bool, False, "Bisect over exact pair distances (as the paper) until the optimum.", flag=True),
    Param("max_solves", int, 40, "Most radii tested (CBC solves and pre-checks)."),
    Param("max_pairs", int, 40_000_000,
          "Neighbour pairs kept (~12 bytes each); more: the greedy result is returned, with a warning."),
)


@dataclass
class Options:
    outliers: int
    time_limit: float
    solve_time_limit: float
    gap: float
    exact: bool
    max_solves: int
    max_pairs: int


def _options(problem: Problem) -> Options:
    p = problem.params
    n = int(problem.pool.size)
    if p.get("outliers") is not None and p.get("outlier_fraction") is not None:
        raise AlcliError("give either --outliers or --outlier-fraction, not both", "--outliers")
    if p.get("outliers") is not None:
        xi = int(p["outliers"])
        if xi < 0:
            raise AlcliError(f"must be at least 0, got {xi}", "--outliers")
    else:
        frac = 1e-4 if p.get("outlier_fraction") is None else float(p["outlier_fraction"])
        if not 0.0 <= frac <= 1.0:
            raise AlcliError(f"must be between 0 and 1, got {frac}", "--outlier-fraction")
        xi = int(math.floor(frac * n + 1e-9))
    checks = [("time_limit", "--time-limit", 600.0), ("solve_time_limit", "--solve-time-limit", 60.0)]
    vals = {}
    for name, flag, default in checks:
        v = float(p[name]) if p.get(name) is not None else default
        if not v > 0:
            raise AlcliError(f"must be positive, got {v}", flag)
        vals[name] = v
    gap = float(p["gap"]) if p.get("gap") is not None else 0.01
    if not 0.0 <= gap < 1.0:
        raise AlcliError(f"must be in [0, 1), got {gap}", "--gap")
    max_solves = int(p["max_solves"]) if p.get("max_solves") is not None else 40
    if max_solves < 0:
        raise AlcliError(f"must be at least 0, got {max_solves}", "--max-solves")
    max_pairs = int(p["max_pairs"]) if p.get("max_pairs") is not None else 40_000_000
    if max_pairs < 1:
        raise AlcliError(f"must be at least 1, got {max_pairs}", "--max-pairs")
    return Options(xi, vals["time_limit"], vals["solve_time_limit"], gap, bool(p.get("exact")), max_solves, max_pairs)


class _StartedShard(GreedyShard):
    """A shard whose distances to s0 were computed before the greedy run (so we can keep them)."""

    def start(self, centers: np.ndarray, gpu: bool = False, neighbours: int = 8, loose: bool = False) -> None:
        if not getattr(self, "_started", False):
            super().start(centers, gpu=gpu, neighbours=neighbours, loose=loose)
            self._started = True


def robust_sq(values_sq: np.ndarray, outliers: int) -> float:
    """(Ξ+1)-th largest of the squared distances (0 when there are no more than Ξ of them)."""
    if outliers >= values_sq.size:
        return 0.0
    return float(max(np.partition(values_sq, values_sq.size - 1 - outliers)[values_sq.size - 1 - outliers], 0.0))


@strategy(
    "kcenter-robust",
    "Core-set: robust k-Center (Sener & Savarese 2018, Alg. 2): greedy, then MIP bisection (CBC).",
    covering=True,
    params=PARAMS,
)
def kcenter_robust(problem: Problem) -> Result:
    t_start = time.perf_counter()
    opts = _options(problem)
    x, s0, cand, b, xi = problem.features, problem.labeled, problem.candidates, problem.budget, opts.outliers
    deadline = t_start + opts.time_limit
    seconds: dict[str, Any] = {}

    shard = _StartedShard(x, cand, cand)
    if s0.size:
        shard.start(np.asarray(x[s0], np.float32), gpu=distance.on_gpu())
        s0_sq = np.maximum(shard.s, 0.0).copy()
    else:
        s0_sq = np.full(cand.size, np.inf)
    s0_assign = shard.assign.copy()  # nearest s0 center (index into s0) of each candidate
    greedy = kcenter_greedy(x, s0, cand, b, shards=[shard])
    shard.settle()
    greedy_sq = np.maximum(shard.s, 0.0)
    seconds["greedy"] = time.perf_counter() - t_start
    delta_greedy = greedy.radius_after
    r_greedy_sq = robust_sq(greedy_sq, xi)
    search = _Search(x, cand, s0_sq, b, xi, opts, deadline, delta_greedy, r_greedy_sq, seconds)
    search.run()
    return _finish(problem, search, greedy, greedy_sq, s0_sq, s0_assign, t_start)


class _Search:
    """Algorithm 2's bisection; keeps the best MIP centers found and everything the report needs."""

    def __init__(self, x: np.ndarray, cand: np.ndarray, s0_sq: np.ndarray, budget: int, outliers: int,
                 opts: Options, deadline: float, delta_greedy: float, r_greedy_sq: float,
                 seconds: dict[str, Any]) -> None:
        self.x, self.cand, self.s0_sq, self.b, self.xi = x, cand, s0_sq, budget, outliers
        self.opts, self.deadline, self.seconds = opts, deadline, seconds
        self.delta_greedy = delta_greedy
        self.ub_sq = r_greedy_sq
        self.best: np.ndarray | None = None  # MIP centers (positions) achieving ub_sq
        self.iterations: list[dict[str, Any]] = []
        self.stopped_by = ""
        self.timed_out_solves = 0
        self.optimal = False
        self.pairs = 0
        if outliers == 0:
            self.lb_sq = (delta_greedy / 2) ** 2 * (1 - 1e-12)  # OPT >= δ_2opt/2: search [lb, ub]
            self.cert_sq: float | None = (delta_greedy / 2) ** 2
            self.cert_source = "greedy 2-approximation"
        else:
            self.lb_sq = -1.0 if opts.exact else r_greedy_sq / 4
            self.cert_sq = None
            self.cert_source = "none"
        self.ub0_sq = r_greedy_sq  # neighbour-list radius
        self.nb: cover_mip.Neighbours | None = None
        self.row_index = np.zeros(0, np.int64)  # nb's rows as indices into cand
        self.floor_sq = np.inf  # nb holds every row with s0_sq > floor_sq
        self.step = 0.0 if opts.exact else max(2 * opts.gap, 0.005)

    def time_left(self) -> float:
        return self.deadline - time.perf_counter()

    def run(self) -> None:
        if self.ub_sq <= 0.0 or self.b >= self.cand.size:
            self.stopped_by = "trivial"
            self.optimal = True
            return
        if self.time_left() <= 0:
            self.stopped_by = "time_limit"
            return
        values = None
        if self.opts.exact:  # every row down to the search floor, every pair distance exact
            if not self._ensure(self.lb_sq, self.lb_sq):
                return
            t1 = time.perf_counter()
            self.nb.fill_exact()
            assert self.nb.exact is not None
            values = np.unique(np.concatenate([self.nb.exact, self.nb.s0_sq[np.isfinite(self.nb.s0_sq)]]))
            self.seconds["exact_pairs"] = time.perf_counter() - t1
        self._bisect(values)

    def _ensure(self, delta_sq: float, target_sq: float) -> bool:
        """Neighbour lists (radius: greedy's robust radius) for every row farther than δ from s0, built
        lazily: rows closer than the radii tested so far are never searched. New rows go down to
        `target_sq` (a little below δ, so a descending search does not extend every time)."""
        if self.nb is not None and delta_sq >= self.floor_sq:
            return True
        t0 = time.perf_counter()
        sel = np.flatnonzero((self.s0_sq > target_sq) & (self.s0_sq <= self.floor_sq))
        room = self.opts.max_pairs - self.pairs
        nb = cover_mip.build_neighbours(self.x, self.cand[sel], self.s0_sq[sel], self.cand, math.sqrt(self.ub0_sq),
                                        room, stop=lambda: self.time_left() <= 0) if room > 0 else None
        self.seconds["neighbours"] = self.seconds.get("neighbours", 0.0) + time.perf_counter() - t0
        if nb is None:
            if self.time_left() <= 0:
                self.stopped_by = "time_limit"
            else:
                self.stopped_by = "max_pairs"
                console.stderr.print(
                    f"[yellow]warning:[/] kcenter-robust: more than {self.opts.max_pairs:,} neighbour pairs "
                    f"(~{self.opts.max_pairs * cover_mip.PAIR_BYTES / 2**30:.1f} GiB) within the greedy radius; "
                    "returning the best set found so far, greedy's if none (raise --max-pairs to search on)")
            return False
        if self.nb is None:
            self.nb, self.row_index = nb, sel
        else:
            self.nb.extend(nb)
            self.row_index = np.concatenate([self.row_index, sel])
        self.floor_sq = target_sq
        self.pairs = self.nb.pairs
        return True

    def _bisect(self, values: np.ndarray | None) -> None:
        while True:
            if self.time_left() <= 0:
                self.stopped_by = "time_limit"
                return
            if len(self.iterations) >= self.opts.max_solves:
                self.stopped_by = "max_solves"
                return
            if values is not None:
                lo = int(np.searchsorted(values, self.lb_sq, side="right"))
                hi = int(np.searchsorted(values, self.ub_sq, side="left"))
                if lo >= hi:
                    self.stopped_by = "optimal"
                    self.optimal = self.timed_out_solves == 0
                    return
                delta_sq = float(values[(lo + hi - 1) // 2])
            else:
                lb, ub = math.sqrt(max(self.lb_sq, 0.0)), math.sqrt(self.ub_sq)
                if ub - lb <= self.opts.gap * ub:
                    self.stopped_by = "gap"
                    return
                delta = (lb + ub) / 2
                if self.step:  # gallop down from greedy's radius until the first infeasible δ
                    delta = max(delta, ub * (1 - self.step))
                delta_sq = delta * delta
                target = max(delta * (1 - self.opts.gap), lb)
                if not self._ensure(delta_sq, target * target):
                    return
            self._decide(delta_sq)

    def _decide(self, delta_sq: float) -> None:
        t0 = time.perf_counter()
        cover = cover_mip.drop_dominated(cover_mip.cover_at(self.nb, delta_sq))
        t_build = time.perf_counter() - t0
        status, cols = cover_mip.precheck(cover, self.b, self.xi)
        how = "precheck"
        if status == "unknown":
            how = "cbc"
            status, cols = cover_mip.solve(cover, self.b, self.xi,
                                           min(self.opts.solve_time_limit, max(self.time_left(), 0.05)))
        it: dict[str, Any] = {"delta": math.sqrt(delta_sq), "status": status, "by": how, "rows": int(cover.rows.size),
                              "cols": int(cover.cols.size), "dominated": cover.dropped}
        if status == "feasible":
            assert cols is not None
            centers = np.sort(cover.cols[cols])
            achieved_sq = self._achieved_sq(centers)
            it["radius"] = math.sqrt(achieved_sq)
            it["centers"] = int(centers.size)
            self.step *= 2
            if achieved_sq < self.ub_sq or self.best is None:
                self.ub_sq = min(self.ub_sq, achieved_sq)
                self.best = centers
        elif status == "infeasible":
            self.lb_sq = delta_sq
            self.step = 0.0
            if self.cert_sq is None or delta_sq > self.cert_sq:
                self.cert_sq = delta_sq
                self.cert_source = "infeasible MIP"
        else:
            self.lb_sq = delta_sq  # move on; proves nothing
            self.step = 0.0
            self.timed_out_solves += 1
        it["build_seconds"] = round(t_build, 4)
        it["seconds"] = round(time.perf_counter() - t0, 4)
        self.iterations.append(it)

    def _achieved_sq(self, centers: np.ndarray) -> float:
        """Robust radius of s0 ∪ centers from the neighbour lists: exact wherever it exceeds the floor."""
        nb = self.nb
        values = self.s0_sq.copy()
        is_center = np.zeros(self.x.shape[0], bool)
        is_center[centers] = True
        hit = np.flatnonzero(is_center[nb.cols[nb.ids]])
        rows = nb.pair_rows()[hit]
        cols = nb.cols[nb.ids[hit]]
        d2 = nb.exact[hit] if nb.exact is not None else cover_mip.exact_pairs(self.x, nb.rows[rows], cols)
        best = np.full(nb.rows.size, np.inf)
        np.minimum.at(best, rows, d2)
        values[self.row_index] = np.minimum(values[self.row_index], best)
        values[np.searchsorted(self.cand, centers)] = 0.0
        return robust_sq(values, self.xi)


def _top_up_shard(x: np.ndarray, s0: np.ndarray, cand: np.ndarray, s0_sq: np.ndarray, s0_assign: np.ndarray,
                  best: np.ndarray, rest: np.ndarray, centers: np.ndarray) -> _StartedShard:
    """A started shard over `rest` for centers = s0 ∪ best (sorted): the distances to s0 are reused, only
    those to `best` are computed (exactly, as `GreedyShard.start` does). Same state as a fresh start."""
    shard = _StartedShard(x, rest, rest)
    near = GreedyShard(x, rest, rest)
    near.start(np.asarray(x[best], np.float32), gpu=distance.on_gpu())
    at = np.searchsorted(cand, rest)
    from_s0 = s0_sq[at] <= near.s if s0.size else np.zeros(rest.size, bool)
    shard.s = np.where(from_s0, s0_sq[at], near.s)
    ids_s0 = np.searchsorted(centers, s0[s0_assign[at]]) if s0.size else np.zeros(rest.size, np.int64)
    shard.assign = np.where(from_s0, ids_s0, np.searchsorted(centers, best[near.assign])).astype(np.int32)
    shard.thr = 4.0 * shard.s * (1 + 1e-9)  # GreedyShard's pruning threshold for its exact s
    shard.measured = near.measured
    shard._started = True
    return shard


def _finish(problem: Problem, search: _Search, greedy: Any, greedy_sq: np.ndarray, s0_sq: np.ndarray,
            s0_assign: np.ndarray, t_start: float) -> Result:
    x, s0, cand, b, xi = problem.features, problem.labeled, problem.candidates, problem.budget, search.xi
    t0 = time.perf_counter()
    picks, why, final_sq, radius_after = greedy.picks, greedy.scores, greedy_sq, greedy.radius_after
    used_mip = False
    if search.best is not None and search.best.size:  # an empty cover: s0 alone suffices, greedy is as good
        best = search.best
        rest = np.setdiff1d(cand, best, assume_unique=True)
        centers = np.union1d(s0, best)
        shard = _top_up_shard(x, s0, cand, s0_sq, s0_assign, best, rest, centers)
        top = kcenter_greedy(x, centers, rest, b - best.size, shards=[shard])
        shard.settle()
        sq = np.zeros(cand.size)
        sq[np.searchsorted(cand, rest)] = np.maximum(shard.s, 0.0)
        if robust_sq(sq, xi) <= robust_sq(greedy_sq, xi):
            picks = np.concatenate([best, top.picks])
            why = np.concatenate([np.full(best.size, np.nan), top.scores])
            final_sq, radius_after, used_mip = sq, top.radius_after, True
    search.seconds["top_up"] = time.perf_counter() - t0
    r_sq = robust_sq(final_sq, xi)
    outl = cand[final_sq > r_sq] if r_sq < float(final_sq.max(initial=0.0)) else np.zeros(0, np.int64)
    radius = math.sqrt(r_sq)
    r_greedy = math.sqrt(robust_sq(greedy_sq, xi))
    lower = math.sqrt(search.cert_sq) if search.cert_sq is not None else None
    if search.optimal:
        lower = radius
    gap = (radius - lower) / radius if lower is not None and radius > 0 else (0.0 if radius == 0 else None)
    n_cbc = sum(1 for it in search.iterations if it["by"] == "cbc")
    search.seconds["total"] = time.perf_counter() - t_start
    report: dict[str, Any] = {
        "delta_greedy": search.delta_greedy,
        "greedy_robust_radius": r_greedy,
        "robust_radius": radius,
        "radius_ratio": radius / r_greedy if r_greedy > 0 else 1.0,
        "lower_bound": lower,
        "lower_bound_source": "optimal (exhaustive bisection)" if search.optimal else search.cert_source,
        "certified_gap": gap,
        "optimal": search.optimal,
        "outliers_allowed": xi,
        "outliers_used": int(outl.size),
        "outlier_positions": [int(v) for v in outl[:MAX_LISTED]],
        "mip_centers": int(search.best.size) if used_mip and search.best is not None else 0,
        "used_mip_solution": used_mip,
        "stopped_by": search.stopped_by,
        "time_budget_hit": search.stopped_by == "time_limit",
        "timed_out_solves": search.timed_out_solves,
        "neighbour_pairs": search.pairs,
        "tested": len(search.iterations),
        "cbc_solves": n_cbc,
        "iterations": search.iterations[:MAX_LISTED],
        "seconds": {k: round(v, 4) for k, v in search.seconds.items()},
    }
    gap_txt = "optimal" if search.optimal else (f"certified gap {100 * gap:.1f}%" if gap is not None
                                                 else "no certified lower bound")
    report["headline"] = (
        f"robust radius {radius:.4g} (greedy {r_greedy:.4g}, ×{report['radius_ratio']:.3f}) · "
        f"lower bound {console.fmt(lower)} · {gap_txt} · outliers {outl.size}/{xi} · "
        f"{len(search.iterations)} radii tested ({n_cbc} CBC) · stopped: {search.stopped_by}"
    )
    return Result(
        picks=np.asarray(picks, np.int64),
        radius_before=greedy.radius_before,
        radius_after=radius_after,
        report=report,
        why=np.asarray(why, np.float64),
        why_name="distance to nearest center when picked (NaN: chosen by the cover MIP)",
    )
