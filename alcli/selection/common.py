"""Math shared by the query strategies: predictive distributions and their uncertainty scores,
seeded top-b ranking, weighted sampling without replacement, FAISS k-means and kNN.

Everything streams over row blocks so no strategy holds more than O(n·(d + C)) at once.
"""

from __future__ import annotations

import numpy as np

from alcli.errors import AlcliError
from alcli.kcenter import distance
from alcli.selection.base import Problem

_BLOCK = 8192
_SLACK = 1e-3  # relative slack on the pruning test: float32 dot products are not exact


def _check_classes(problem: Problem) -> None:
    p, mc = problem.probs, problem.mc_probs
    if p is not None and mc is not None and p.shape[1] != mc.shape[2]:
        raise AlcliError(f"'probs' has {p.shape[1]} classes, 'mc_probs' {mc.shape[2]}", "EMBEDDINGS")


def predictive(problem: Problem, rows: np.ndarray, mc: bool = True) -> np.ndarray:
    """Class probabilities of x[rows] (float64, rows renormalised to sum 1): the MC-dropout mean over
    the T passes when the artifact has `mc_probs` (and `mc`), else the softmax `probs`."""
    _check_classes(problem)
    use_mc = mc and problem.mc_probs is not None
    src = problem.mc_probs if use_mc else problem.probs
    assert src is not None
    out = np.empty((rows.size, src.shape[-1]))
    for start in range(0, rows.size, _BLOCK):
        blk = rows[start : start + _BLOCK]
        p = src[:, blk].astype(np.float64).mean(axis=0) if use_mc else src[blk].astype(np.float64)
        out[start : start + blk.size] = _normalise(p)
    return out


def _normalise(p: np.ndarray) -> np.ndarray:
    total = p.sum(axis=-1, keepdims=True)
    return p / np.where(total > 0, total, 1.0)


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats along the last axis, with 0·log 0 = 0."""
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=-1)


def margin(p: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row (1 for a single class)."""
    if p.shape[1] < 2:
        return np.ones(p.shape[0])
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def mc_scores(problem: Problem, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BALD mutual information H(mean_t p_t) - mean_t H(p_t) and the variation ratio
    1 - (votes of the modal class)/T of x[rows], from the T MC-dropout passes, blockwise."""
    mc = problem.mc_probs
    assert mc is not None
    t, _, c = mc.shape
    bald = np.empty(rows.size)
    vr = np.empty(rows.size)
    step = max(256, _BLOCK // max(1, t))
    for start in range(0, rows.size, step):
        blk = rows[start : start + step]
        p = _normalise(mc[:, blk].astype(np.float64))  # (T, b, C)
        bald[start : start + blk.size] = entropy(p.mean(axis=0)) - entropy(p).mean(axis=0)
        votes = np.zeros((blk.size, c), np.int64)
        np.add.at(votes, (np.broadcast_to(np.arange(blk.size), (t, blk.size)), p.argmax(axis=2)), 1)
        vr[start : start + blk.size] = 1.0 - votes.max(axis=1) / t
    np.maximum(bald, 0.0, out=bald)  # the difference can round a hair below zero
    return bald, vr


def top_b(scores: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the b largest scores, largest first; exact ties in a seeded random order (so sorted
    data, e.g. by label, never biases which of equally scored points are taken)."""
    tiebreak = rng.permutation(scores.size)
    order = np.lexsort((tiebreak, -scores))
    return order[:b]


def weighted_sample(weights: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    """b indices drawn without replacement, each draw with probability proportional to the weights of
    those left (Efraimidis–Spirakis keys E/w, E ~ Exp(1)); zero weights come last, in random order."""
    w = np.asarray(weights, np.float64)
    e = rng.exponential(size=w.size)
    with np.errstate(divide="ignore"):
        keys = np.where(w > 0, e / np.where(w > 0, w, 1.0), np.inf)
    order = np.lexsort((rng.permutation(w.size), keys))
    return order[:b]


class Space:
    """Squared l2 distances among the rows of `h` (n×D float32), or, given `a` (n×C), among the
    outer products a_i ⊗ h_i without forming them: |a_i|²|h_i|² + |a_j|²|h_j|² - 2(a_i·a_j)(h_i·h_j)."""

    def __init__(self, h: np.ndarray, a: np.ndarray | None = None) -> None:
        self.h = h
        self.a = a
        self.sq = _rowsq(h) if a is None else (a * a).sum(axis=1) * _rowsq(h)

    def to_rows(self, i: int, rows: np.ndarray) -> np.ndarray:
        """Squared distance of the rows `rows` to row i (float64, clipped at 0)."""
        hh = (self.h[rows] @ self.h[i]).astype(np.float64)
        dots = hh if self.a is None else hh * (self.a[rows] @ self.a[i])
        out = self.sq[rows] + self.sq[i] - 2.0 * dots
        np.maximum(out, 0.0, out=out)
        out[rows == i] = 0.0
        return out

    def to(self, i: int) -> np.ndarray:
        """Squared distance of every row to row i (float64, clipped at 0; exactly 0 at i): one pass,
        O(n·(D + C))."""
        hh = (self.h @ self.h[i]).astype(np.float64)
        dots = hh if self.a is None else hh * (self.a @ self.a[i])
        out = self.sq + self.sq[i] - 2.0 * dots
        np.maximum(out, 0.0, out=out)
        out[i] = 0.0
        return out


def _rowsq(h: np.ndarray) -> np.ndarray:
    out = np.empty(h.shape[0])
    for start in range(0, h.shape[0], _BLOCK):
        blk = h[start : start + _BLOCK].astype(np.float64)
        out[start : start + _BLOCK] = np.einsum("ij,ij->i", blk, blk)
    return out


def kmeanspp(space: Space, k: int, rng: np.random.Generator, first: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): the first center uniformly at random, or with
    first="max-norm" the row of largest norm (lowest index on ties, as BADGE); then each next one drawn
    with probability proportional to its squared distance to the nearest chosen center (D² sampling).
    Returns (indices, squared distance of each to the nearest earlier center when drawn; first: |row|²).

    The distances are kept up to date incrementally, one new center a step, and only where the triangle
    inequality allows a change: a new center c can be nearer to x than x's center c_a only if
    |c - c_a|² < 4·|x - c_a|², and |c - c_a| for all earlier centers costs O(k·(D + C)). So a step costs
    O(n) plus O((D + C)) per point it measures, at most O(n·(D + C))."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # per-step products are small: one thread is fastest
        return _kmeanspp(space, k, rng, first)


def _kmeanspp(space: Space, k: int, rng: np.random.Generator, first: str) -> tuple[np.ndarray, np.ndarray]:
    n = space.sq.size
    i = int(np.argmax(space.sq)) if first == "max-norm" else int(rng.integers(n))
    picks = [i]
    why = [float(space.sq[i])]
    mind = space.to(i)
    assign = np.zeros(n, np.int64)  # which center (position in picks) is nearest
    chosen = np.zeros(n, bool)
    chosen[i] = True
    while len(picks) < k:
        cum = np.cumsum(mind)
        if cum[-1] > 0:
            i = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), n - 1)
            while mind[i] <= 0:  # rounding at the end of the cumulative sum
                i -= 1
        else:  # every row coincides with a center: uniform among those left
            i = int(rng.choice(np.flatnonzero(~chosen)))
        why.append(float(mind[i]))
        between = space.to_rows(i, np.asarray(picks))  # |c_j - c_new|² for every earlier center j
        picks.append(i)
        chosen[i] = True
        idx = np.flatnonzero(between[assign] < 4.0 * mind * (1 + _SLACK))
        if idx.size > n // 4:  # gathering rows costs ~3x streaming them: measure all past a quarter
            d2, idx = space.to(i), np.arange(n)
        else:
            d2 = space.to_rows(i, idx)
        better = d2 < mind[idx]
        mind[idx[better]] = d2[better]
        assign[idx[better]] = len(picks) - 1
        mind[i] = 0.0
        assign[i] = len(picks) - 1
    return np.asarray(picks, np.int64), np.asarray(why)


def kmeans(x: np.ndarray, rows: np.ndarray, k: int, seed: int, niter: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS k-means of x[rows] into k clusters from a seeded k-means++ start (FAISS' own start is
    uniform, which often leaves two centroids in one cluster): (centroids k×d float32, assignment)."""
    import faiss

    data = gather(x, rows)
    init, _ = kmeanspp(Space(data), k, np.random.default_rng(seed))
    km = faiss.Kmeans(data.shape[1], int(k), niter=int(niter), seed=int(seed) & 0x7FFFFFFF, verbose=False,
                      max_points_per_centroid=max(256, -(-rows.size // max(1, k))), min_points_per_centroid=1)
    km.train(data, init_centroids=data[init])
    _, assign = km.index.search(data, 1)
    return np.asarray(km.centroids, np.float32), assign[:, 0].astype(np.int64)


def gather(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """x[rows] as one C-contiguous float32 array (the only n×d copy a FAISS call needs)."""
    out = np.empty((rows.size, x.shape[1]), np.float32)
    step = distance.block_rows(x.shape[1], 4)
    for start in range(0, rows.size, step):
        out[start : start + step] = x[rows[start : start + step]]
    return out


def knn_mean_distance(data: np.ndarray, k: int) -> np.ndarray:
    """Mean l2 distance of each row of `data` (float32, contiguous) to its k nearest other rows
    (FAISS exact search, blockwise); 0 where k is 0."""
    import faiss

    n = data.shape[0]
    if k <= 0:
        return np.zeros(n)
    index = faiss.IndexFlatL2(data.shape[1])
    index.add(data)
    out = np.empty(n)
    for start in range(0, n, _BLOCK):
        q = data[start : start + _BLOCK]
        d2, ids = index.search(q, k + 1)
        # drop each row's own match: the column holding itself, else (duplicates) the last one
        own = ids == np.arange(start, start + q.shape[0])[:, None]
        drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
        keep = np.ones_like(own)
        keep[np.arange(q.shape[0]), drop] = False
        dist = np.sqrt(np.maximum(d2[keep].reshape(q.shape[0], k).astype(np.float64), 0.0))
        out[start : start + q.shape[0]] = dist.mean(axis=1)
    return out
