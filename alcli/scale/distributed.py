"""k-Center-Greedy on a Dask cluster (`select --scheduler local[:N]|tcp://HOST:PORT`).

exact (default): the candidates are split into one contiguous shard per worker; each shard lives in a Dask
actor holding the rows and a `GreedyShard` over them, and its own copy of the centers (`CenterBounds`).
The driver streams the rows to the actors block by block (it never holds the whole matrix; a
`alcli.scale.outofcore.FeatureStore` works as the source). Each greedy step is ONE round trip: the driver sends
the new center (position + vector, d floats) to every actor; each marks it taken if it owns it, folds it in
with the triangle-inequality pruning, and answers with its farthest point (squared distance, position,
vector). The driver reduces (max, lowest position), so the picks equal the single-machine picks exactly.
Greedy is sequential, so one round trip per pick is the floor; the first pick (farthest from the mean)
uses the driver's block sums in the single-machine order, so it matches bit for bit too.

two-round (approximate, Malkomes et al., NeurIPS 2015): every shard runs greedy locally for b picks, the
driver runs greedy over the union of those picks with the labelled set as centers, and the actors report
the covering radius of the result over the whole pool. Two round trips in all, radius ≤ 4·OPT. The report
holds a certified lower bound on the optimal radius (max over shards of the (b+1)-th local greedy
distance / 2), so the summary says how far from optimal the approximate answer can be.

A worker lost mid-run is an AlcliError (exit 2, nothing written): the run restarts from its inputs.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from alcli.errors import AlcliError
from alcli.kcenter import distance
from alcli.kcenter.greedy import WIDE_BYTES, CenterBounds, farthest_from_mean, kcenter_greedy, plan
from alcli.kcenter.shard import GreedyShard
from alcli.scale.cluster import SOURCE, connect, short, workers
from alcli.selection.base import Problem, Result

MODES = ("exact", "two-round")
CALL_TIMEOUT = 3600.0
TOP_K = 64  # farthest points each shard reports per round trip (the driver may pick several from them)

# (squared distances, positions, vectors, bound on the rest, {position: score} of the picks applied, seconds)
Top = tuple[np.ndarray, np.ndarray, np.ndarray, float, dict[int, float], float, bool]  # ..., seconds, dense


def _heap_for_temporaries() -> None:
    """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which freezes glibc's mmap threshold
    at 128 KiB: every per-step numpy temporary then becomes a fresh mmap that faults in zeroed pages (4-5×
    slower greedy steps, measured). Let the heap keep up to 64 MiB temporaries instead (glibc only)."""
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD


class ShardActor:
    """Runs inside a Dask worker: rows x (m×d float32) at global positions `positions` (ascending)."""

    def __init__(self, m: int, d: int, positions: np.ndarray, capacity: int) -> None:
        _heap_for_temporaries()
        self.x = np.empty((m, d), np.float32)
        self.positions = np.asarray(positions, np.int64)
        self.rows = np.arange(m, dtype=np.int64)
        self.capacity = capacity
        self.shard = GreedyShard(self.x, self.rows, self.positions)
        self.bounds = CenterBounds(capacity, d)
        self.busy = 0.0  # seconds of compute in the last call, for the overhead figure

    def put(self, start: int, block: np.ndarray) -> int:
        self.x[start : start + block.shape[0]] = block
        return int(block.shape[0])

    def _best(self) -> tuple[float, int, np.ndarray | None]:
        value, pos = self.shard.best()
        vec = None if pos < 0 else self.x[int(np.searchsorted(self.positions, pos))].copy()
        return value, pos, vec

    def _top(self, k: int, scores: dict[int, float], t0: float) -> Top:
        """The k farthest points (by squared distance, then lowest position), their vectors, and the
        (k+1)-th distance: no point left out is farther than that bound."""
        vals, pos, vecs, bound = self.shard.top(k)
        return vals, pos, vecs, bound, scores, time.perf_counter() - t0, bool(self.shard.dense)

    def farthest_from(self, mean: np.ndarray) -> tuple[float, int]:
        if self.rows.size == 0:
            return -1.0, -1
        d2 = distance.sqdist_rows(self.x, self.rows, mean)
        i = int(np.argmax(d2))
        return float(d2[i]), int(self.positions[i])

    def start(self, centers: np.ndarray, k: int = 1) -> Top:
        t0 = time.perf_counter()
        self.bounds.add(centers)
        self.shard.start(self.bounds.c[: self.bounds.k], gpu=False, loose=True)
        return self._top(k, {}, t0)

    def start_single(self, pos: int, vec: np.ndarray, k: int = 1) -> Top:
        t0 = time.perf_counter()
        self.bounds.add(vec[None, :])
        self.shard.start_single(vec.astype(np.float64))
        self.shard.take(pos)
        return self._top(k, {}, t0)

    def _add(self, pos: int, vec: np.ndarray, scores: dict[int, float]) -> None:
        i = int(np.searchsorted(self.positions, pos))
        if i < self.positions.size and self.positions[i] == pos:
            scores[int(pos)] = float(self.shard.s[i])  # the pick's distance, exactly as the owner holds it
        self.shard.take(pos)
        lower = self.bounds.lower(vec)
        center_id = self.bounds.k
        self.bounds.add(vec[None, :])
        self.shard.add_center(vec.astype(np.float64), center_id, lower)

    def apply(self, positions: np.ndarray, vecs: np.ndarray, k: int) -> Top:
        """Fold in new centers in order (the state m single steps give, in one pass); answer with the new
        top k and the picks' distances² for the ones this shard owns."""
        t0 = time.perf_counter()
        vecs = np.asarray(vecs, np.float32)
        lower = self.bounds.lower_nearest(vecs)  # a GreedyShard reads only each center's nearest bound
        first = self.bounds.k
        self.bounds.add(vecs)
        scores = self.shard.apply(np.asarray(positions, np.int64), vecs, first, lower)
        return self._top(k, scores, t0)

    def local_greedy(self, labeled: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray, float, float | None]:
        """Two-round, round 1: greedy on this shard alone. Returns (positions, vectors, the (b+1)-th
        squared distance, the radius² before any pick)."""
        m = self.rows.size
        if m == 0:
            return np.zeros(0, np.int64), np.zeros((0, self.x.shape[1]), np.float32), -1.0, None
        before = None
        picks: list[int] = []
        vecs: list[np.ndarray] = []
        if labeled.shape[0]:
            self.start(labeled)
            before = self.shard.best()[0]
        else:
            i = farthest_from_mean(self.x, self.rows)
            self.start_single(int(self.positions[i]), self.x[i])
            picks.append(int(self.positions[i]))
            vecs.append(self.x[i].copy())
        value, pos, vec = self._best()
        while len(picks) < min(budget, m) and pos >= 0:
            picks.append(pos)
            vecs.append(vec)
            self._add(pos, vec, {})
            value, pos, vec = self._best()
        return np.asarray(picks, np.int64), np.asarray(vecs, np.float32).reshape(-1, self.x.shape[1]), value, before

    def cover(self, centers: np.ndarray) -> float:
        """Largest squared distance from this shard's points to their nearest of `centers`."""
        shard = GreedyShard(self.x, self.rows, self.positions)
        shard.start(centers, gpu=False)
        return max(shard.s.max(initial=-1.0), 0.0) if self.rows.size else -1.0


class _Driver:
    """The client side: actors (one per worker), their calls, and the one-line error when one fails."""

    def __init__(self, client: Any, x: Any, candidates: np.ndarray, capacity: int) -> None:
        self.client = client
        names = workers(client)
        self.parts = [p for p in np.array_split(candidates, len(names))]
        self.d = int(x.shape[1])
        self.stage = "starting the shard actors"
        futures = [client.submit(ShardActor, p.size, self.d, p, capacity, actor=True, workers=[w],
                                 allow_other_workers=False, pure=False)
                   for w, p in zip(names, self.parts, strict=True)]
        self.actors = self.wait(futures)
        self.workers = workers
        self.overhead = 0.0
        self.steps = 0

    def wait(self, futures: list[Any] | Callable[[], list[Any]]) -> list[Any]:
        try:
            futures = futures() if callable(futures) else futures
            return [f.result(timeout=CALL_TIMEOUT) for f in futures]
        except Exception as exc:  # a lost worker, a timeout, a broken connection: never a wrong artifact
            raise self.failed(exc) from None

    def failed(self, exc: BaseException) -> AlcliError:
        return AlcliError(f"distributed selection failed while {self.stage} ({short(exc)}); nothing was "
                          "written: rerun, it restarts from the inputs", SOURCE)

    def call(self, method: str, *args: Any) -> list[Any]:
        return self.wait(lambda: [getattr(a, method)(*args) for a in self.actors])

    def load(self, x: Any, candidates: np.ndarray, want_mean: bool) -> np.ndarray | None:
        """Stream the candidate rows to their actors in single-machine block order; the float64 sum of
        those same blocks gives the mean bit for bit as `rows_mean` does."""
        self.stage = "sending the features to the workers"
        step = distance.block_rows(self.d)
        bounds = np.cumsum([0] + [p.size for p in self.parts])
        total = np.zeros(self.d, np.float64)
        pending: list[Any] = []
        sent = 0
        for start in range(0, candidates.size, step):
            block = np.asarray(x[candidates[start : start + step]], np.float32)
            if want_mean:
                total += block.astype(np.float64).sum(axis=0)
            stop = start + block.shape[0]
            for i, actor in enumerate(self.actors):
                lo, hi = max(start, bounds[i]), min(stop, bounds[i + 1])
                if lo < hi:
                    try:
                        pending.append(actor.put(int(lo - bounds[i]), block[lo - start : hi - start]))
                    except Exception as exc:
                        raise self.failed(exc) from None
            sent += block.nbytes
            if len(pending) > 2 * len(self.actors):
                self.wait(pending)
                pending = []
                if sent > 32 << 20:  # Dask's message objects form cycles that keep the sent blocks alive
                    gc.collect()
                    sent = 0
        self.wait(pending)
        return total / candidates.size if want_mean else None

    def round_trip(self, positions: np.ndarray, vecs: np.ndarray, k: int) -> list[Top]:
        ts = time.perf_counter()
        answers = self.call("apply", positions, vecs, k)
        self.overhead += time.perf_counter() - ts - max(a[5] for a in answers)
        self.steps += 1
        return answers


class _Pool:
    """The shards' farthest points, merged. `plan` (alcli.kcenter.greedy.plan) picks greedily among them
    while the choice is certain: the first pick is the exact reduce (max, lowest position) of the shards'
    own values; each further one only if, after folding in the picks so far, it beats every other reported
    point and the bound on all unreported ones by a relative margin far above float64 rounding."""

    def __init__(self, answers: list[Top]) -> None:
        self.vals = np.concatenate([a[0] for a in answers]).astype(np.float64)
        self.pos = np.concatenate([a[1] for a in answers]).astype(np.int64)
        self.vecs = np.concatenate([a[2] for a in answers]).astype(np.float32)
        self.bound = max(a[3] for a in answers)
        self.dense = any(a[6] for a in answers)  # the fold before these answers met most points

    def top_value(self) -> float:
        return float(self.vals.max(initial=-1.0))

    def plan(self, room: int, work: float) -> np.ndarray:
        return plan(self.vals, self.pos, self.vecs, self.bound, room, work)[0]


def kcenter_exact(client: Any, x: Any, labeled: np.ndarray, candidates: np.ndarray, budget: int,
                  on_round_trip: Callable[[int], None] | None = None, top_k: int = TOP_K,
                  dense_top_k: int = 8192) -> tuple[np.ndarray, np.ndarray, float | None, float, dict[str, Any]]:
    """Exact distributed k-Center-Greedy. Returns (picks, scores, radius_before, radius_after, report).

    As `kcenter_greedy`: after a dense fold that proved fewer picks than half the rivals, the shards report
    `dense_top_k` rivals in all (their vectors at most `WIDE_BYTES`) on the next round trip."""
    t0 = time.perf_counter()
    drv = _Driver(client, x, candidates, labeled.size + budget)
    wide = max(top_k, min(dense_top_k, WIDE_BYTES // (4 * drv.d)) // len(drv.actors))
    k = top_k
    mean = drv.load(x, candidates, want_mean=labeled.size == 0)
    t1 = time.perf_counter()
    picks: list[int] = []
    scores: list[float] = []
    radius_before = None
    drv.stage = "computing the initial distances"
    if labeled.size:
        pool = _Pool(drv.call("start", np.asarray(x[labeled], np.float32), top_k))
        radius_before = float(np.sqrt(max(pool.top_value(), 0.0)))
    else:
        far = drv.call("farthest_from", mean)
        first = -max((v, -p) for v, p in far if p >= 0)[1]
        pool = _Pool(drv.call("start_single", first, np.asarray(x[first], np.float32), wide))
        picks.append(first)
        scores.append(float("nan"))
    t2 = time.perf_counter()
    while len(picks) < budget:
        chosen = pool.plan(budget - len(picks), max(candidates.size, top_k * top_k))
        if chosen.size == 0:
            break
        k = wide if pool.dense and 2 * chosen.size < pool.pos.size else top_k
        drv.stage = f"greedy step {len(picks) + 1} of {budget}"
        if on_round_trip is not None:
            on_round_trip(drv.steps)
        positions = pool.pos[chosen]
        answers = drv.round_trip(positions, pool.vecs[chosen], k)
        owned = {p: v for a in answers for p, v in a[4].items()}
        picks.extend(positions.tolist())
        scores.extend(float(np.sqrt(owned[p])) for p in positions.tolist())
        pool = _Pool(answers)
    t3 = time.perf_counter()
    trips = max(drv.steps, 1)
    report = {
        "distributed": "exact", "workers": len(drv.actors), "shard_sizes": [int(p.size) for p in drv.parts],
        "seconds": {"load": t1 - t0, "initial_distances": t2 - t1, "greedy": t3 - t2},
        "round_trips": drv.steps, "picks_per_round_trip": (len(picks) - (labeled.size == 0)) / trips,
        "round_trip_overhead_ms": 1000 * drv.overhead / trips,
        "seconds_per_pick": (t3 - t2) / max(len(picks), 1),
    }
    radius_after = float(np.sqrt(max(pool.top_value(), 0.0)))
    return np.asarray(picks, np.int64), np.asarray(scores), radius_before, radius_after, report


def kcenter_two_round(client: Any, x: Any, labeled: np.ndarray, candidates: np.ndarray,
                      budget: int) -> tuple[np.ndarray, np.ndarray, float | None, float, dict[str, Any]]:
    """Greedy per shard, then greedy over the union of the shard picks (approximate, ≤ 4·OPT)."""
    t0 = time.perf_counter()
    drv = _Driver(client, x, candidates, labeled.size + budget)
    drv.load(x, candidates, want_mean=False)
    t1 = time.perf_counter()
    lab = np.asarray(x[labeled], np.float32).reshape(-1, drv.d)
    drv.stage = "running greedy on each shard (round 1)"
    local = drv.call("local_greedy", lab, budget)
    pos = np.concatenate([r[0] for r in local])
    vecs = np.concatenate([r[1] for r in local])
    order = np.argsort(pos)
    pos, vecs = pos[order], vecs[order]
    t2 = time.perf_counter()
    union = np.concatenate([lab, vecs])
    res = kcenter_greedy(union, np.arange(lab.shape[0]), np.arange(lab.shape[0], union.shape[0]), budget)
    picks = pos[res.picks - lab.shape[0]]
    drv.stage = "measuring the covering radius (round 2)"
    centers = np.concatenate([lab, union[res.picks]])
    radius_after = float(np.sqrt(max(max(drv.call("cover", centers)), 0.0)))
    befores = [r[3] for r in local if r[3] is not None]
    radius_before = float(np.sqrt(max(max(befores), 0.0))) if labeled.size and befores else None
    lower = max((r[2] for r in local if r[0].size >= budget), default=-1.0)
    opt_lb = float(np.sqrt(lower)) / 2 if lower > 0 else None
    t3 = time.perf_counter()
    report = {
        "distributed": "two-round (approximate, Malkomes et al. 2015)", "workers": len(drv.actors),
        "shard_sizes": [int(p.size) for p in drv.parts], "union_size": int(pos.size),
        "optimal_radius_lower_bound": opt_lb,
        "radius_over_optimal_at_most": None if not opt_lb else radius_after / opt_lb,
        "seconds": {"load": t1 - t0, "round1": t2 - t1, "round2": t3 - t2},
    }
    return picks, res.scores, radius_before, radius_after, report


def runner(client: Any, mode: str = "exact", top_k: int = TOP_K) -> Callable[[Problem], Result]:
    """A `select_round` runner for method kcenter on the cluster behind `client`."""
    if mode not in MODES:
        raise AlcliError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", "--distributed-mode")

    def run(problem: Problem) -> Result:
        cand = problem.candidates
        if mode == "exact":
            out = kcenter_exact(client, problem.features, problem.labeled, cand, problem.budget, top_k=top_k)
        else:
            out = kcenter_two_round(client, problem.features, problem.labeled, cand, problem.budget)
        picks, scores, before, after, report = out
        return Result(picks=picks, radius_before=before, radius_after=after, report=report, why=scores,
                      why_name="distance to nearest center when picked")

    return run


@contextlib.contextmanager
def cluster_runner(spec: str, mode: str, method: str) -> Iterator[Callable[[Problem], Result]]:
    """`select --scheduler`: connect, yield the runner, close the cluster."""
    if method != "kcenter":
        raise AlcliError(f"runs method kcenter only, not {method!r} (unset ALCLI_SCHEDULER for others)", SOURCE)
    with connect(spec) as client:
        yield runner(client, mode)


def select_runner(spec: str | None, mode: str, method: str) -> contextlib.AbstractContextManager[Any]:
    """`select --scheduler` (and `alcli.select(scheduler=...)`): a context giving the select_round runner
    on the cluster, or None (the strategy's own function) without a scheduler. Dask loads only with one."""
    if not spec:
        return contextlib.nullcontext(None)
    return cluster_runner(spec, mode, method)
