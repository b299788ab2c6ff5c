"""`probcover` (Yehuda et al., NeurIPS 2022): greedy max coverage of δ-balls on the features.

Ball(x) = pool points at l2 distance < δ from x (itself included). Points in a labelled point's ball are
covered from the start. Each step picks the candidate whose ball holds the most uncovered points (lowest
position on ties) and covers them; once nothing is left to gain the remaining picks are uniform (seeded),
as in the authors' code. The δ-graph comes from FAISS range search in blocks and is refused, with a
clear error, when it would hold more than --probcover-max-pairs pairs (~20 bytes each at peak).

Without --probcover-delta, δ follows the paper's purity heuristic: k-means the pool into K clusters
(K = the number of classes of `probs` when present, else 10) and take the largest δ for which at least
95% of the balls around (a seeded sample of up to 2,000) pool points are pure, i.e. hold one cluster.
A ball around x is pure iff δ <= r(x), the distance from x to the nearest point of another cluster, so
that δ is the 5% quantile of r over the sample (exactly, no search over δ).
"""

from __future__ import annotations

import numpy as np

from alcli.errors import AlcliError
from alcli.kcenter import distance
from alcli.selection import common
from alcli.selection.base import Param, Problem, Result, strategy

PURITY = 0.95
SAMPLE = 2000


@strategy(
    "probcover",
    "ProbCover: greedy max coverage of δ-balls (δ by the paper's purity heuristic unless given).",
    uses=("probs",),
    params=(
        Param("probcover_delta", float, None, "ball radius δ (l2); unset: purity heuristic (95% pure balls)."),
        Param("probcover_max_pairs", int, 20_000_000, "memory bound: most (point, neighbour) pairs kept."),
    ),
)
def probcover(problem: Problem) -> Result:
    x, pool = problem.features, problem.pool
    delta = problem.params.get("probcover_delta")
    max_pairs = int(problem.params.get("probcover_max_pairs") or 20_000_000)
    if delta is None:
        k = int(problem.probs.shape[1]) if problem.probs is not None else 10
        delta = purity_delta(x, pool, k, problem.seed)
    elif not delta > 0:
        raise AlcliError(f"must be > 0, got {delta}", "--probcover-delta")
    graph = distance.range_neighbours(x, pool, pool, float(delta) ** 2, max_pairs)
    if graph is None:
        raise AlcliError(f"δ = {delta:.4g} links more than {max_pairs} (point, neighbour) pairs; lower "
                         "--probcover-delta or raise --probcover-max-pairs", "--probcover-delta")
    indptr, ids, _ = graph
    del graph  # the helper's float32 distances are not needed: ~8 bytes a pair stay (ids + reverse ids)
    is_cand = ~np.isin(pool, problem.labeled, assume_unique=True)
    picks, gains, covered0, covered = greedy_cover(indptr, ids, is_cand, problem.budget, problem.rng())
    report = {"delta": float(delta), "pairs": int(ids.size), "coverage_before": covered0 / pool.size,
              "coverage_after": covered / pool.size}
    return Result(picks=pool[picks], why=gains.astype(np.float64), why_name="pool points newly covered",
                  report=report)


def greedy_cover(indptr: np.ndarray, ids: np.ndarray, is_cand: np.ndarray, b: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Greedy max coverage on the graph row i -> ids[indptr[i]:indptr[i+1]] (ball of i). Rows with
    is_cand False are already centers. Returns (picks, their gains, covered before, covered after)."""
    n = is_cand.size
    owner = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
    rev_owner = owner[np.argsort(ids, kind="stable")]  # column view: rows whose ball holds point j
    rev_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(ids, minlength=n), out=rev_ptr[1:])
    covered = np.zeros(n, bool)
    covered[ids[~is_cand[owner]]] = True
    covered0 = int(covered.sum())
    gain = np.bincount(owner[~covered[ids]], minlength=n).astype(np.int64)
    del owner
    gain[~is_cand] = -1
    picks, gains = [], []
    while len(picks) < b:
        i = int(np.argmax(gain))
        if gain[i] <= 0:
            break
        picks.append(i)
        gains.append(int(gain[i]))
        ball = ids[indptr[i] : indptr[i + 1]]
        new = ball[~covered[ball]]
        covered[new] = True
        starts, ends = rev_ptr[new], rev_ptr[new + 1]
        hit = rev_owner[_ranges(starts, ends)]
        gain -= np.bincount(hit, minlength=n)
        gain[i] = -1
    if len(picks) < b:  # everything coverable is covered: uniform among the candidates left
        left = np.flatnonzero(gain >= 0)
        extra = rng.choice(left, size=b - len(picks), replace=False)
        picks.extend(int(e) for e in extra)
        gains.extend([0] * extra.size)
    return np.asarray(picks, np.int64), np.asarray(gains), covered0, int(covered.sum())


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, e) for each pair, vectorised."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return offsets + np.arange(total)


def purity_delta(x: np.ndarray, pool: np.ndarray, k: int, seed: int, niter: int = 20) -> float:
    """The paper's heuristic: largest δ with >= 95% pure balls w.r.t. a k-means clustering (see module)."""
    _, assign = common.kmeans(x, pool, max(1, min(k, pool.size)), seed, niter)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(pool.size, size=min(SAMPLE, pool.size), replace=False))
    q = common.gather(x, pool[sample]).astype(np.float64)
    qsq = (q * q).sum(axis=1)
    r2 = np.full(sample.size, np.inf)
    step = distance.block_rows(x.shape[1])
    for start in range(0, pool.size, step):
        blk = common.gather(x, pool[start : start + step]).astype(np.float64)
        d2 = qsq[:, None] + (blk * blk).sum(axis=1)[None, :] - 2.0 * (q @ blk.T)
        d2[assign[sample][:, None] == assign[start : start + step][None, :]] = np.inf
        np.minimum(r2, d2.min(axis=1), out=r2)
    r = np.sort(np.sqrt(np.maximum(r2, 0.0)))
    delta = float(r[int(np.floor((1 - PURITY) * r.size))])
    if not np.isfinite(delta) or delta <= 0:
        raise AlcliError("the purity heuristic found no usable δ (one cluster, or duplicates across clusters); "
                         "pass --probcover-delta", "--probcover-delta")
    return delta
