"""`kcenter`: the core-set selection of Sener & Savarese (2018), Algorithm 1 (exact greedy)."""

from __future__ import annotations

from alcli.kcenter.greedy import kcenter_greedy
from alcli.kcenter.greedy_torch import cuda_shards
from alcli.selection.base import Problem, Result, strategy


@strategy(
    "kcenter",
    "Core-set: exact k-Center-Greedy on the features (Sener & Savarese 2018, Alg. 1).",
    covering=True,
)
def kcenter(problem: Problem) -> Result:
    shards = cuda_shards(problem.features, problem.candidates)
    res = kcenter_greedy(problem.features, problem.labeled, problem.candidates, problem.budget, shards=shards)
    report = {"seconds": res.seconds, "points_measured": res.measured, "device": "cuda" if shards else "cpu",
              "profile": res.profile}
    return Result(
        picks=res.picks,
        radius_before=res.radius_before,
        radius_after=res.radius_after,
        report=report,
        why=res.scores,
        why_name="distance to nearest center when picked",
    )
