"""`random`: uniform sampling without replacement, the paper's first baseline."""

from __future__ import annotations

from alcli.selection.base import Problem, Result, strategy


@strategy("random", "Uniformly at random from the unlabelled pool (seeded).")
def random(problem: Problem) -> Result:
    picks = problem.rng().choice(problem.candidates, size=problem.budget, replace=False)
    return Result(picks=picks)
