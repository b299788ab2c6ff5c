"""What every query strategy receives and returns, and the registry that `alcli select` reads.

A strategy is a function `(Problem) -> Result` registered with `@strategy(...)`. It declares which
optional inputs it needs (probs, mc_probs, grad_features, labels) and its own options (`Param`s, turned
into `select` options by the CLI), so input checks, output writing and the summary live in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alcli.errors import AlcliError

NEEDS = ("probs", "mc_probs", "grad_features", "labels")


@dataclass
class Problem:
    """One selection round. Positions index rows of `features` (not data-set rows)."""

    features: np.ndarray  # (n, d) float32, read-only
    labeled: np.ndarray  # positions already labelled (the centers s0), sorted
    pool: np.ndarray  # positions that take part (not excluded), sorted; includes `labeled`
    budget: int
    seed: int = 0
    probs: np.ndarray | None = None  # (n, C)
    mc_probs: np.ndarray | None = None  # (T, n, C)
    grad_features: np.ndarray | None = None  # (n, G)
    labels: np.ndarray | None = None  # (n,) true labels, -1 unknown (oracle simulations)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def candidates(self) -> np.ndarray:
        """Positions that may be picked: in the pool and not labelled yet (sorted)."""
        return np.setdiff1d(self.pool, self.labeled, assume_unique=True)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


@dataclass
class Result:
    picks: np.ndarray  # positions, in the order chosen
    radius_before: float | None = None  # covering radius of labelled ∪ nothing, l2 (not squared)
    radius_after: float | None = None
    report: dict[str, Any] = field(default_factory=dict)  # method-specific, JSON-able
    why: np.ndarray | None = None  # per pick: the score that chose it (distance, entropy, ...)
    why_name: str = ""


@dataclass(frozen=True)
class Param:
    """A strategy option, e.g. Param("outliers", int, None, "max points left uncovered")."""

    name: str
    type: Any
    default: Any
    help: str
    flag: bool = False


@dataclass(frozen=True)
class Strategy:
    name: str
    run: Callable[[Problem], Result]
    summary: str
    needs: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    covering: bool = False  # reports the k-Center covering radius before/after
    uses: tuple[str, ...] = ()  # optional inputs: loaded when the artifact has them, never required

    @property
    def loads(self) -> tuple[str, ...]:
        """Optional arrays to read from the embeddings artifact: what it needs plus what it can use."""
        return self.needs + tuple(u for u in self.uses if u not in self.needs)

    def check(self, problem: Problem, source: str) -> None:
        for need in self.needs:
            value = getattr(problem, need)
            if value is None:
                hint = {
                    "probs": "write it with `alcli embed` (softmax outputs)",
                    "mc_probs": "write it with `alcli embed --mc-samples T`",
                    "grad_features": "write it with `alcli embed --grad-embedding`",
                    "labels": "pass --labels DATA with every label known (simulation only)",
                }[need]
                raise AlcliError(f"method '{self.name}' needs '{need}', which is missing: {hint}", source)


REGISTRY: dict[str, Strategy] = {}


def strategy(
    name: str,
    summary: str,
    needs: tuple[str, ...] = (),
    params: tuple[Param, ...] = (),
    covering: bool = False,
    uses: tuple[str, ...] = (),
) -> Callable[[Callable[[Problem], Result]], Callable[[Problem], Result]]:
    """Register a query strategy under `name` (the `--method` value)."""

    def register(func: Callable[[Problem], Result]) -> Callable[[Problem], Result]:
        if name in REGISTRY:
            raise RuntimeError(f"strategy {name!r} registered twice")
        for need in needs + uses:
            if need not in NEEDS:
                raise RuntimeError(f"unknown need {need!r}")
        REGISTRY[name] = Strategy(name, func, summary, needs, params, covering, uses)
        return func

    return register
