"""`badge` (Ash et al., ICLR 2020): k-means++ seeding on gradient embeddings.

The gradient embedding of x_i is g_i = a_i ⊗ h_i with a_i = p_i - onehot(argmax p_i) (softmax `probs`)
and h_i the features, so g_i is never formed: |g_i - g_j|² = |a_i|²|h_i|² + |a_j|²|h_j|² - 2(a_i·a_j)(h_i·h_j)
(`common.Space`). When the artifact holds `grad_features` (`alcli embed --grad-embedding`) they are used
directly.

As BADGE's reference code: the first center is the candidate of largest |g|, each next one is drawn
with probability proportional to its squared distance to the nearest chosen center (D² sampling, seeded);
labelled points are not centers. One new center a step, O(n·(D + C)) time per step, O(n·(D + C)) memory.
"""

from __future__ import annotations

import numpy as np

from alcli.selection import common
from alcli.selection.base import Problem, Result, strategy


def grad_space(problem: Problem, rows: np.ndarray) -> common.Space:
    """The gradient-embedding space of x[rows]: `grad_features` when present, else factorised."""
    if problem.grad_features is not None:
        return common.Space(common.gather(problem.grad_features, rows))
    p = common.predictive(problem, rows, mc=False)
    a = p.copy()
    a[np.arange(rows.size), p.argmax(axis=1)] -= 1.0
    return common.Space(common.gather(problem.features, rows), a)


@strategy(
    "badge",
    "BADGE: k-means++ seeding on gradient embeddings (p - onehot(argmax p)) ⊗ features (seeded).",
    needs=("probs",),
    uses=("grad_features",),
)
def badge(problem: Problem) -> Result:
    cand = problem.candidates
    space = grad_space(problem, cand)
    picks, why = common.kmeanspp(space, problem.budget, problem.rng(), first="max-norm")
    return Result(picks=cand[picks], why=why, why_name="squared grad-embedding distance to nearest center",
                  report={"grad_source": "grad_features" if space.a is None else "probs x features"})
