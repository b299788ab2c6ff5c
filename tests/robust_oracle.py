"""Brute-force robust k-Center (small inputs only): the exact optimum by enumerating center subsets."""

from __future__ import annotations

from itertools import combinations

import numpy as np
from oracles import pairwise_sq


def robust_radius(dist_sq: np.ndarray, outliers: int) -> float:
    """(Ξ+1)-th largest distance (l2) of the points to their centers; 0 when Ξ covers them all."""
    if outliers >= dist_sq.size:
        return 0.0
    return float(np.sqrt(max(np.sort(dist_sq)[::-1][outliers], 0.0)))


def robust_kcenter_bruteforce(x, labeled, pool, budget: int, outliers: int) -> tuple[float, tuple[int, ...]]:
    """min over b-subsets S of the unlabelled pool of the robust radius of labeled ∪ S over the pool.
    Returns (optimal radius, one optimal S). Exponential: keep C(n, b) small (n ≤ ~15)."""
    x = np.asarray(x, np.float64)
    pool = [int(p) for p in pool]
    labeled = [int(p) for p in labeled]
    cand = [p for p in pool if p not in set(labeled)]
    d2 = pairwise_sq(x[pool], x)  # pool × all
    base = d2[:, labeled].min(axis=1) if labeled else np.full(len(pool), np.inf)
    best, best_set = np.inf, ()
    for subset in combinations(cand, min(budget, len(cand))):
        cur = np.minimum(base, d2[:, list(subset)].min(axis=1)) if subset else base
        r = robust_radius(cur, outliers)
        if r < best:
            best, best_set = r, subset
    return float(best), best_set
