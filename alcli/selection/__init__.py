"""Query strategies. Importing this package registers every strategy in `REGISTRY`.

A strategy is a function `(Problem) -> Result` (alcli.selection.base) registered with `@strategy`;
`run` turns artifacts into a Problem and a Result into the next labelled set; `common` holds what several
strategies share (entropy, nearest centers). Algorithm 2 (robust k-Center, a search on δ) is `robust`,
over the k-Center engine's cover MIP.

May import: alcli.kcenter, alcli.artifacts, alcli.errors, alcli.console. Never learn, labelling, report,
scale or the CLI.
"""

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
