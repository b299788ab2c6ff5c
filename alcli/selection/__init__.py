"""Query strategies. Importing this package registers every strategy in `REGISTRY`."""

from alcli.selection import (  # noqa: F401  (registers)
    badge,
    bmdr,
    clustering,
    coverage,
    hybrid,
    kcenter,
    random,
    robust,
    uncertainty,
)
from alcli.selection.base import REGISTRY, Param, Problem, Result, Strategy, strategy

__all__ = ["REGISTRY", "Param", "Problem", "Result", "Strategy", "strategy"]
