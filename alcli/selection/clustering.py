"""Clustering strategies: the paper's k-Median baseline and TypiClust (Hacohen et al., ICML 2022).

Both cluster with FAISS k-means seeded by --seed; both return real unlabelled points.
"""

from __future__ import annotations

import heapq

import numpy as np

from alcli.kcenter import distance
from alcli.selection import common
from alcli.selection.base import Param, Problem, Result, strategy

KMEANS_ITERS = Param("kmeans_iters", int, 20, "k-means iterations (kmedian and typiclust).")


@strategy(
    "kmedian",
    "k-Median baseline: the unlabelled points nearest the b k-means centroids of the unlabelled pool.",
    params=(KMEANS_ITERS,),
)
def kmedian(problem: Problem) -> Result:
    cand = problem.candidates
    b = problem.budget
    x = problem.features
    centroids, _ = common.kmeans(x, cand, b, problem.seed, problem.params.get("kmeans_iters", 20))
    picks, dist = nearest_distinct(x, cand, centroids)
    return Result(picks=cand[picks], why=dist, why_name="distance to its k-means centroid",
                  report={"clusters": b})


def nearest_distinct(
    x: np.ndarray, cand: np.ndarray, centroids: np.ndarray, k: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """For centroids in order 0, 1, ..., the nearest candidate not taken by an earlier centroid (indices
    into `cand`), with its l2 distance. FAISS proposes k neighbours; a centroid whose k are all taken
    gets an exact scan of the candidates left."""
    import faiss

    kk = min(k, cand.size)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(common.gather(x, cand))
    d2, ids = index.search(np.ascontiguousarray(centroids, np.float32), kk)
    taken = np.zeros(cand.size, bool)
    picks = np.empty(centroids.shape[0], np.int64)
    dist = np.empty(centroids.shape[0])
    for j in range(centroids.shape[0]):
        row = ids[j]
        free = (row >= 0) & ~taken[np.maximum(row, 0)]
        if free.any():
            i = int(row[np.argmax(free)])
            value = float(d2[j, np.argmax(free)])
        else:
            left = np.flatnonzero(~taken)
            all_d2 = distance.sqdist_rows(x, cand[left], centroids[j].astype(np.float64))
            i = int(left[np.argmin(all_d2)])
            value = float(all_d2.min())
        taken[i] = True
        picks[j] = i
        dist[j] = np.sqrt(max(value, 0.0))
    return picks, dist


@strategy(
    "typiclust",
    "TypiClust: the most typical point of the largest clusters with the fewest labelled points.",
    params=(
        KMEANS_ITERS,
        Param("typiclust_max_clusters", int, 500, "cap on k = |labelled| + budget (as the authors' code)."),
        Param("typiclust_knn", int, 20, "neighbours for typicality = 1 / mean distance to them in the cluster."),
    ),
)
def typiclust(problem: Problem) -> Result:
    """Cluster the whole pool into k = min(|labelled| + b, cap) clusters. Repeatedly take the cluster
    with the fewest labelled-or-picked points (largest first, then lowest id) and pick its most typical
    point not yet labelled; typicality is computed once per cluster over its unlabelled points with
    min(knn, size // 2) neighbours (as the authors' code does for small clusters)."""
    x, pool, b = problem.features, problem.pool, problem.budget
    cap = int(problem.params.get("typiclust_max_clusters", 500))
    knn = int(problem.params.get("typiclust_knn", 20))
    k = max(1, min(problem.labeled.size + b, cap, pool.size))
    _, assign = common.kmeans(x, pool, k, problem.seed, problem.params.get("kmeans_iters", 20))
    is_lab = np.isin(pool, problem.labeled, assume_unique=True)
    size = np.bincount(assign, minlength=k)
    count = np.bincount(assign[is_lab], minlength=k)
    free_of = _members(assign, ~is_lab, k)
    heap = [(int(count[c]), -int(size[c]), c) for c in range(k) if free_of[c].size]
    heapq.heapify(heap)
    ranked: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    used = np.zeros(k, np.int64)
    picks, why = [], []
    while len(picks) < b:
        cnt, neg_size, c = heapq.heappop(heap)
        if c not in ranked:
            members = pool[free_of[c]]
            typ = 1.0 / (common.knn_mean_distance(common.gather(x, members), min(knn, members.size // 2)) + 1e-5)
            order = np.lexsort((members, -typ))
            ranked[c] = (members[order], typ[order])
        members, typ = ranked[c]
        picks.append(int(members[used[c]]))
        why.append(float(typ[used[c]]))
        used[c] += 1
        if used[c] < members.size:
            heapq.heappush(heap, (cnt + 1, neg_size, c))
    return Result(picks=np.asarray(picks, np.int64), why=np.asarray(why),
                  why_name="typicality (1 / mean distance to nearest in cluster)",
                  report={"clusters": k, "clusters_picked_from": len(ranked)})


def _members(assign: np.ndarray, mask: np.ndarray, k: int) -> list[np.ndarray]:
    """Per cluster, the indices i (ascending) with mask[i] and assign[i] == cluster."""
    idx = np.flatnonzero(mask)
    order = idx[np.argsort(assign[idx], kind="stable")]
    bounds = np.searchsorted(assign[order], np.arange(k + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(k)]
