"""Brute-force reference implementations the tests compare alcli against (small inputs only)."""

from __future__ import annotations

import numpy as np


def pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def kcenter_greedy_bruteforce(x, labeled, candidates, budget):
    """Textbook Algorithm 1 with a full distance matrix; ties -> lowest position.
    Returns (picks, radius_before, radius_after) with radii as l2 distances."""
    x = np.asarray(x, np.float64)
    labeled = list(labeled)
    cand = list(candidates)
    centers = list(labeled)
    picks = []
    if not centers:
        # No labelled set: the first pick is alcli's convention (the paper always starts from a labelled set),
        # the candidate farthest from the candidates' float64 mean, with alcli's float64 recipe: the mean
        # is seldom exact, so points at exactly equal real distance (small-integer grids) differ by an ulp,
        # and the order of the d-term sum (einsum's, not sum()'s pairwise one) decides which is "farther".
        pts = x[cand]
        diff = pts - pts.mean(axis=0)
        d = np.einsum("ij,ij->i", diff, diff)
        first = cand[int(np.argmax(d))]
        centers.append(first)
        picks.append(first)

    def mins():
        left = [c for c in cand if c not in centers]
        if not left:
            return left, np.zeros(0)
        return left, pairwise_sq(x[left], x[centers]).min(axis=1)

    left, m = mins()
    before = float(np.sqrt(m.max())) if labeled and m.size else None
    while len(picks) < budget:
        left, m = mins()
        j = int(np.argmax(m))  # first max = lowest position (left is ascending)
        centers.append(left[j])
        picks.append(left[j])
    left, m = mins()
    after = float(np.sqrt(m.max())) if m.size else 0.0
    return picks, before, after
