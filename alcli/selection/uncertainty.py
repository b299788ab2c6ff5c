"""Uncertainty baselines of the paper's comparison (section 5, after Gal et al. 2017).

Softmax scores (`entropy`, `margin`, `least-confidence`) read the MC-dropout mean over the T passes
when the artifact has `mc_probs`, else `probs`. DBAL's `bald` and `variation-ratios` read `mc_probs`.
`oracle-uncertainty` samples by the true loss (simulations with every label known).

Each picks the b highest-scoring unlabelled points; exact ties are broken in a seeded random order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from alcli.errors import AlcliError
from alcli.selection import common
from alcli.selection.base import Problem, Result, strategy


def _rank(problem: Problem, score: np.ndarray, name: str, report_sign: float = 1.0) -> Result:
    """Pick the b largest `score`s among the candidates; report score·report_sign per pick."""
    cand = problem.candidates
    order = common.top_b(score, problem.budget, problem.rng())
    return Result(picks=cand[order], why=report_sign * score[order], why_name=name)


def _softmax_strategy(name: str, summary: str, score: Callable[[np.ndarray], np.ndarray], sign: float,
                      why_name: str) -> None:
    """Register a method ranking by `sign * score(predictive probs)` (largest first)."""

    def run(problem: Problem) -> Result:
        p = common.predictive(problem, problem.candidates)
        return _rank(problem, sign * score(p), why_name, report_sign=sign)

    run.__name__ = name.replace("-", "_")
    strategy(name, summary, needs=("probs",), uses=("mc_probs",))(run)


_softmax_strategy("entropy", "Max entropy of the softmax (MC-dropout mean when the artifact has mc_probs).",
                  common.entropy, 1.0, "entropy (nats)")
_softmax_strategy("margin", "Smallest top-1 minus top-2 softmax probability (MC mean when present).",
                  common.margin, -1.0, "top-1 minus top-2 probability")
_softmax_strategy("least-confidence", "Largest 1 - max softmax probability (MC mean when present).",
                  lambda p: 1.0 - p.max(axis=1), 1.0, "1 - max probability")


@strategy("bald", "DBAL: max mutual information between label and weights over MC-dropout passes (BALD).",
          needs=("mc_probs",))
def bald(problem: Problem) -> Result:
    score, _ = common.mc_scores(problem, problem.candidates)
    return _rank(problem, score, "BALD mutual information (nats)")


@strategy("variation-ratios", "DBAL: max 1 - (modal-class votes)/T over MC-dropout passes.",
          needs=("mc_probs",))
def variation_ratios(problem: Problem) -> Result:
    _, score = common.mc_scores(problem, problem.candidates)
    return _rank(problem, score, "variation ratio")


@strategy("oracle-uncertainty",
          "Simulation only: sample by the true loss -log p[y] (needs --labels with every label known).",
          needs=("probs", "labels"), uses=("mc_probs",))
def oracle_uncertainty(problem: Problem) -> Result:
    cand = problem.candidates
    assert problem.labels is not None
    y = problem.labels[cand]
    unknown = int(np.count_nonzero(y < 0))
    if unknown:
        raise AlcliError(f"{unknown} unlabelled candidates have no known label (-1); the oracle needs them all",
                         "--labels")
    p = common.predictive(problem, cand)
    if y.size and int(y.max()) >= p.shape[1]:
        raise AlcliError(f"label {int(y.max())} is out of range for {p.shape[1]} classes in 'probs'", "--labels")
    loss = -np.log(np.maximum(p[np.arange(cand.size), y], 1e-12))
    order = common.weighted_sample(loss, problem.budget, problem.rng())
    return Result(picks=cand[order], why=loss[order], why_name="loss -log p[true label]",
                  report={"mean_loss_candidates": float(loss.mean()) if loss.size else 0.0})
