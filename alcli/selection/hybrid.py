"""`kcenter-uncertain`: the uncertainty + core-set hybrid the paper leaves open.

Exactly: rank the unlabelled candidates by predictive entropy (MC-dropout mean when the artifact has
`mc_probs`; exact ties in a seeded random order), keep the top m = --uncertain-pool-factor × budget
(all of them when m exceeds their number), then run the exact k-Center-Greedy of `kcenter` with the
labelled points as centers and only those m as candidates. The greedy thus covers the uncertain set;
the covering radius reported before/after is measured over the WHOLE pool (labelled ∪ candidates).
"""

from __future__ import annotations

import numpy as np

from alcli.errors import AlcliError
from alcli.kcenter.greedy import covering_radius, kcenter_greedy
from alcli.selection import common
from alcli.selection.base import Param, Problem, Result, strategy


@strategy(
    "kcenter-uncertain",
    "k-Center-Greedy over only the factor × b highest-entropy candidates (radius over the whole pool).",
    needs=("probs",),
    uses=("mc_probs",),
    covering=True,
    params=(Param("uncertain_pool_factor", float, 10.0, "m = factor × budget most uncertain candidates."),),
)
def kcenter_uncertain(problem: Problem) -> Result:
    factor = float(problem.params.get("uncertain_pool_factor") or 10.0)
    if not factor >= 1:
        raise AlcliError(f"must be >= 1, got {factor}", "--uncertain-pool-factor")
    cand = problem.candidates
    m = min(cand.size, int(np.ceil(factor * problem.budget)))
    ent = common.entropy(common.predictive(problem, cand))
    top = np.sort(cand[common.top_b(ent, m, problem.rng())])
    res = kcenter_greedy(problem.features, problem.labeled, top, problem.budget)
    x, pool = problem.features, problem.pool
    before = covering_radius(x, problem.labeled, pool)
    after = covering_radius(x, np.union1d(problem.labeled, res.picks), pool)
    report = {"uncertain_pool": int(m), "min_entropy_in_pool": float(np.sort(ent)[-m]),
              "restricted_radius_after": res.radius_after}
    return Result(picks=res.picks, radius_before=before, radius_after=after, report=report, why=res.scores,
                  why_name="distance to nearest center among the uncertain when picked")
