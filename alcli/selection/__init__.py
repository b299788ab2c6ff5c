"""Query strategies. Importing this package registers every strategy in `REGISTRY`."""

from alcli.selection import kcenter, random, robust  # noqa: F401  (registration side effects)
from alcli.selection.base import REGISTRY, Param, Problem, Result, Strategy, strategy

__all__ = ["REGISTRY", "Param", "Problem", "Result", "Strategy", "strategy"]
