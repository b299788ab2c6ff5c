"""One selection round from artifacts to artifact: the shared checks, the call, the bookkeeping.

Every strategy goes through `select_round`, so input validation, the covering radius, the output
`labeled` artifact and the summary are the same for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from alcli.artifacts.embeddings import Embeddings
from alcli.artifacts.labeled import LabeledSet, add_round
from alcli.errors import AlcliError
from alcli.kcenter.greedy import covering_radius
from alcli.selection.base import REGISTRY, Param, Problem, Result, Strategy


@dataclass
class Round:
    labeled: LabeledSet  # old ∪ new, the artifact to write
    result: Result
    strategy: Strategy
    picks_rows: np.ndarray  # new data-set rows, in pick order
    candidates: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        res = self.result
        return {
            "method": self.strategy.name,
            "picked": int(self.picks_rows.size),
            "labeled_before": int(self.labeled.indices.size - self.picks_rows.size),
            "labeled_after": int(self.labeled.indices.size),
            "unlabeled_candidates": self.candidates,
            "radius_before": res.radius_before,
            "radius_after": res.radius_after,
            "seconds": round(self.seconds, 4),
            "round": int(self.labeled.next_round - 1),
            **({"distributed": self.distributed()} if "distributed" in self.result.report else {}),
        }

    def distributed(self) -> dict[str, Any]:
        """A Dask run's mode, workers, overhead and approximation bound (no timings)."""
        return {k: v for k, v in self.result.report.items() if k != "seconds"}


def get_strategy(name: str) -> Strategy:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AlcliError(f"unknown method {name!r}; choose one of {', '.join(sorted(REGISTRY))}", "--method") from None


def resolve_params(strat: Strategy, given: Mapping[str, Any], flags: bool = False) -> dict[str, Any]:
    """Every option of `strat` (its Params), given or default; a name it does not have is an AlcliError
    naming it and listing the ones it has. `flags`: name them as the CLI's options (--outlier-fraction)."""
    own = {p.name: p for p in strat.params}

    def shown(name: str) -> str:
        return "--" + name.replace("_", "-") if flags else name

    for name in given:
        if name not in own:
            listed = ", ".join(shown(p) for p in own) or "none"
            raise AlcliError(f"method {strat.name!r} has no option {shown(name)!r} (its options: {listed})",
                             shown(name))
    return {name: _param_value(p, given[name], shown(name)) if name in given else p.default
            for name, p in own.items()}


_TYPE_WORDS = {int: "integer", float: "number"}


def _param_value(param: Param, value: Any, source: str) -> Any:
    """A value as the CLI's option type would give it (int, float, bool flag, a choice), or an AlcliError."""
    if value is None or param.flag:
        return value if value is None else bool(value)
    kind = param.type
    if kind is int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if kind is float and isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    choices = getattr(kind, "choices", None)
    if choices is not None and value in choices:
        return value
    want = f"one of {', '.join(map(str, choices))}" if choices is not None else _TYPE_WORDS.get(kind, "value")
    raise AlcliError(f"{value!r} is not a valid {want}", source)


def select_round(
    emb: Embeddings,
    labeled: LabeledSet,
    method: str,
    budget: int,
    *,
    seed: int = 0,
    exclude: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    params: dict[str, Any] | None = None,
    radius: bool | None = None,
    runner: Callable[[Problem], Result] | None = None,
) -> Round:
    """Run `method` for `budget` new picks. `exclude` and `labels` are data-set rows/labels.
    `radius` computes the covering radius for methods that do not report it (None = only theirs).
    `runner` replaces the strategy's own function (e.g. the same method on a Dask cluster)."""
    strat = get_strategy(method)
    if labeled.pool_size != emb.pool_size:
        raise AlcliError(
            f"labelled set is for a pool of {labeled.pool_size} rows, the embeddings for {emb.pool_size}",
            labeled.name or "--labeled",
        )
    if budget <= 0:
        raise AlcliError(f"must be at least 1, got {budget}", "--budget")
    labeled_pos = emb.positions_of(labeled.indices, "labelled", labeled.name or "--labeled")
    in_pool = np.ones(emb.n, bool)
    if exclude is not None and exclude.size:
        hit = np.isin(emb.indices, exclude)
        overlap = np.intersect1d(labeled.indices, exclude)
        if overlap.size:
            raise AlcliError(f"row {int(overlap[0])} is both labelled and excluded", "--exclude")
        in_pool &= ~hit
    pool = np.flatnonzero(in_pool)
    problem = Problem(
        features=emb.features,
        labeled=labeled_pos,
        pool=pool,
        budget=budget,
        seed=seed,
        probs=emb.probs,
        mc_probs=emb.mc_probs,
        grad_features=emb.grad_features,
        labels=None if labels is None else _labels_for(emb, labels),
        params=dict(params or {}),
    )
    n_cand = int(pool.size - labeled_pos.size)
    if budget > n_cand:
        raise AlcliError(f"{budget} is more than the {n_cand} unlabelled points in the pool", "--budget")
    strat.check(problem, emb.name)
    t0 = time.perf_counter()
    result = (runner or strat.run)(problem)
    _check_picks(strat, result.picks, problem)
    if radius and not strat.covering:
        result.radius_before = covering_radius(emb.features, labeled_pos, pool)
        result.radius_after = covering_radius(emb.features, np.union1d(labeled_pos, result.picks), pool)
    seconds = time.perf_counter() - t0
    rows = emb.indices[result.picks]
    new = add_round(labeled, rows)
    new.last_scores = result.why if result.why is not None else np.zeros(0)
    new.attrs = {
        "method": strat.name,
        "budget": int(budget),
        "seed": int(seed),
        "radius_before": _attr(result.radius_before),
        "radius_after": _attr(result.radius_after),
        "seconds": float(seconds),
        "score_name": result.why_name,
        "embeddings": emb.name,
    }
    new.report = {"params": dict(params or {}), **result.report}
    return Round(new, result, strat, rows, n_cand, seconds)


def _attr(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _labels_for(emb: Embeddings, labels: np.ndarray) -> np.ndarray:
    if labels.shape[0] != emb.pool_size:
        raise AlcliError(f"has {labels.shape[0]} labels for a pool of {emb.pool_size} rows", "--labels")
    return np.asarray(labels, np.int64)[emb.indices]


def _check_picks(strat: Strategy, picks: np.ndarray, problem: Problem) -> None:
    """A strategy bug must never become a silently wrong artifact."""
    picks = np.asarray(picks)
    cand = problem.candidates
    ok = (
        picks.ndim == 1
        and picks.size == problem.budget
        and np.unique(picks).size == picks.size
        and np.isin(picks, cand).all()
    )
    if not ok:
        raise RuntimeError(f"strategy {strat.name!r} returned invalid picks (internal error)")
