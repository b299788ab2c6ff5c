"""Every query strategy of `alcli select` against answers computed by hand or by brute force.

Runs go through `select_round` (the shared checks and bookkeeping), on in-memory embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from oracles import kcenter_greedy_bruteforce, pairwise_sq

from alcli.artifacts import Embeddings, LabeledSet
from alcli.errors import AlcliError
from alcli.selection import REGISTRY, common
from alcli.selection.badge import grad_space
from alcli.selection.base import Problem
from alcli.selection.clustering import nearest_distinct
from alcli.selection.coverage import greedy_cover, purity_delta
from alcli.selection.run import select_round


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def make(n: int = 60, d: int = 4, c: int = 4, t: int = 5, seed: int = 0, x: np.ndarray | None = None,
         temp: float = 2.0) -> Embeddings:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32) if x is None else x.astype(np.float32)
    n = x.shape[0]
    probs = softmax(temp * rng.normal(size=(n, c)))
    mc = softmax(temp * rng.normal(size=(t, n, c)))
    return Embeddings(x, np.arange(n), n, probs=probs, mc_probs=mc)


def select(emb: Embeddings, method: str, b: int, labeled=(), seed: int = 0, labels=None, **params):
    lab = LabeledSet(np.asarray(labeled, np.int64), np.zeros(len(labeled), np.int32), emb.pool_size)
    return select_round(emb, lab, method, b, seed=seed, labels=labels, params=params).result


def blobs(k: int = 5, per: int = 30, d: int = 3, seed: int = 0, sizes=None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 100
    sizes = sizes or [per] * k
    y = np.repeat(np.arange(k), sizes)
    x = centers[y] + rng.normal(size=(y.size, d))
    perm = rng.permutation(y.size)
    return x[perm].astype(np.float32), y[perm]


# ---- uncertainty -------------------------------------------------------------------------------------


def brute_entropy(p):
    return np.array([-sum(v * np.log(v) for v in row if v > 0) for row in np.asarray(p, np.float64)])


@pytest.mark.parametrize("method,score", [
    ("entropy", lambda p: brute_entropy(p)),
    ("margin", lambda p: -np.array([sorted(r)[-1] - sorted(r)[-2] for r in p])),
    ("least-confidence", lambda p: 1 - p.max(axis=1)),
])
def test_softmax_scores_pick_the_most_uncertain(method, score):
    emb = make(n=40)
    emb.mc_probs = None  # softmax path
    labeled = [0, 5, 7]
    res = select(emb, method, 6, labeled=labeled)
    s = score(emb.probs.astype(np.float64))
    s[labeled] = -np.inf
    want = np.argsort(-s, kind="stable")[:6]
    assert list(res.picks) == list(want)
    assert np.allclose(np.abs(res.why), np.abs(s[want]))


def test_entropy_picks_most_uniform_rows_by_hand():
    p = np.array([[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [0.8, 0.1, 0.1], [0.4, 0.3, 0.3]])
    emb = Embeddings(np.zeros((5, 2), np.float32), np.arange(5), 5, probs=p.astype(np.float32))
    res = select(emb, "entropy", 2)
    assert list(res.picks) == [2, 4]
    assert res.why[0] == pytest.approx(np.log(3))
    assert list(select(emb, "least-confidence", 2).picks) == [2, 4]
    assert sorted(select(emb, "margin", 2).picks) == [1, 2]  # both margins 0; row 4 has 0.1


def test_entropy_uses_mc_mean_when_present():
    emb = make(n=50, seed=3)
    res = select(emb, "entropy", 5)
    s = brute_entropy(emb.mc_probs.astype(np.float64).mean(axis=0))
    assert list(res.picks) == list(np.argsort(-s, kind="stable")[:5])


def test_bald_zero_when_samples_agree_and_matches_formula():
    emb = make(n=30, t=6, seed=1)
    agree = emb.mc_probs.copy()
    agree[:] = emb.probs[None]
    same = Embeddings(emb.features, emb.indices, 30, probs=emb.probs, mc_probs=agree)
    assert np.allclose(select(same, "bald", 30).why, 0.0, atol=1e-9)
    res = select(emb, "bald", 8)
    mc = emb.mc_probs.astype(np.float64)
    brute = brute_entropy(mc.mean(axis=0)) - np.mean([brute_entropy(mc[t]) for t in range(6)], axis=0)
    assert list(res.picks) == list(np.argsort(-brute, kind="stable")[:8])
    assert np.allclose(res.why, brute[res.picks])


def test_variation_ratios_by_hand():
    # T=4 passes, C=3: argmax votes per point -> variation ratio 1 - modal/T
    votes = np.array([[0, 0, 0, 0], [0, 1, 0, 1], [0, 1, 2, 0], [2, 2, 2, 1]])
    mc = np.full((4, 4, 3), 0.1, np.float32)
    for i in range(4):
        for t in range(4):
            mc[t, i, votes[i, t]] = 0.8
    emb = Embeddings(np.zeros((4, 1), np.float32), np.arange(4), 4, mc_probs=mc)
    res = select(emb, "variation-ratios", 4)
    by_point = dict(zip(res.picks.tolist(), res.why.tolist(), strict=True))
    assert by_point == {0: 0.0, 1: 0.5, 2: 0.5, 3: 0.25}
    assert set(res.picks[:2].tolist()) == {1, 2}


def test_ties_break_by_seed_not_by_position():
    p = np.full((200, 2), 0.5, np.float32)  # every point equally uncertain
    emb = Embeddings(np.zeros((200, 1), np.float32), np.arange(200), 200, probs=p)
    a, b = select(emb, "entropy", 10, seed=1).picks, select(emb, "entropy", 10, seed=2).picks
    assert list(a) == list(select(emb, "entropy", 10, seed=1).picks)
    assert set(a) != set(b) and max(a) > 10


def test_oracle_uncertainty_samples_by_loss():
    emb = make(n=40, seed=2)
    emb.mc_probs = None
    y = np.random.default_rng(0).integers(0, 4, 40)
    with pytest.raises(AlcliError, match="out of range"):
        select(emb, "oracle-uncertainty", 5, labels=np.where(np.arange(40) == 9, 4, y))
    res = select(emb, "oracle-uncertainty", 5, labeled=[1, 2], labels=y, seed=4)
    loss = -np.log(emb.probs.astype(np.float64)[np.arange(40), y])
    assert np.allclose(res.why, loss[res.picks])
    assert list(res.picks) == list(select(emb, "oracle-uncertainty", 5, labeled=[1, 2], labels=y, seed=4).picks)
    assert list(res.picks) != list(select(emb, "oracle-uncertainty", 5, labeled=[1, 2], labels=y, seed=5).picks)
    with pytest.raises(AlcliError, match="no known label"):
        select(emb, "oracle-uncertainty", 5, labels=np.where(np.arange(40) == 9, -1, y))
    # a -1 on a labelled point is fine: only candidates need labels
    select(emb, "oracle-uncertainty", 5, labeled=[9], labels=np.where(np.arange(40) == 9, -1, y))


def test_weighted_sample_first_draw_is_proportional():
    w = np.array([1.0, 3.0, 0.0, 6.0])
    firsts = np.array([common.weighted_sample(w, 1, np.random.default_rng(s))[0] for s in range(4000)])
    freq = np.bincount(firsts, minlength=4) / firsts.size
    assert freq[2] == 0 and np.allclose(freq, w / w.sum(), atol=0.03)
    assert sorted(common.weighted_sample(w, 4, np.random.default_rng(0))[3:]) == [2]  # zero weight last


# ---- clustering ---------------------------------------------------------------------------------------


def test_kmedian_one_real_point_per_blob():
    x, y = blobs(k=6, per=25)
    emb = make(x=x)
    labeled = [0, 1]
    res = select(emb, "kmedian", 6, labeled=labeled, seed=3)
    assert not set(res.picks) & set(labeled)
    assert sorted(y[res.picks]) == list(range(6))
    assert list(res.picks) == list(select(emb, "kmedian", 6, labeled=labeled, seed=3).picks)


def test_nearest_distinct_deduplicates_in_order():
    x = np.array([[0.0], [1.0], [2.0], [10.0]], np.float32)
    cand = np.array([0, 1, 2, 3])
    picks, dist = nearest_distinct(x, cand, np.array([[0.1], [0.2], [9.0]], np.float32), k=1)
    assert list(picks) == [0, 1, 3]  # second centroid's nearest (0) is taken: exact scan finds 1
    assert np.allclose(dist, [0.1, 0.8, 1.0], atol=1e-6)


def brute_typicality(x: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(pairwise_sq(x, x))
    np.fill_diagonal(d, np.inf)
    return 1 / (np.sort(d, axis=1)[:, :k].mean(axis=1) + 1e-5)


def test_typiclust_most_typical_point_of_each_blob():
    x, y = blobs(k=5, per=40, sizes=[60, 50, 40, 30, 20])
    emb = make(x=x)
    res = select(emb, "typiclust", 5, seed=1)
    assert sorted(y[res.picks]) == list(range(5))
    assert list(y[res.picks]) == [0, 1, 2, 3, 4]  # largest cluster first
    for pick, typ in zip(res.picks, res.why, strict=True):
        members = np.flatnonzero(y == y[pick])
        brute = brute_typicality(x[members], min(20, members.size // 2))
        assert members[np.argmax(brute)] == pick
        assert typ == pytest.approx(brute.max(), rel=1e-4)


def test_typiclust_skips_covered_clusters():
    x, y = blobs(k=4, per=30)
    emb = make(x=x)
    labeled = [int(np.flatnonzero(y == 0)[0]), int(np.flatnonzero(y == 1)[0])]  # k = 2 + 2 clusters
    res = select(emb, "typiclust", 2, labeled=labeled)
    assert sorted(y[res.picks]) == [2, 3]


# ---- BADGE ---------------------------------------------------------------------------------------------


def grad_embedding(probs: np.ndarray, h: np.ndarray) -> np.ndarray:
    p = probs.astype(np.float64)
    a = p.copy()
    a[np.arange(len(p)), p.argmax(axis=1)] -= 1
    return np.einsum("ic,id->icd", a, h.astype(np.float64)).reshape(len(p), -1)


def test_badge_factorised_distances_equal_brute_force():
    emb = make(n=30, d=6, c=5, seed=5)
    rows = np.arange(30)
    space = grad_space(Problem(emb.features, np.zeros(0, np.int64), rows, 3, probs=emb.probs), rows)
    g = grad_embedding(emb.probs, emb.features)
    brute = pairwise_sq(g, g)
    for i in (0, 7, 29):
        assert np.allclose(space.to(i), brute[i], rtol=1e-4, atol=1e-5)
    assert np.allclose(space.sq, (g * g).sum(axis=1), rtol=1e-5)


def test_badge_first_pick_max_norm_and_grad_features_agree():
    emb = make(n=80, d=5, c=3, seed=6)
    labeled = [3, 4]
    res = select(emb, "badge", 10, labeled=labeled, seed=7)
    g = grad_embedding(emb.probs, emb.features)
    norms = (g * g).sum(axis=1)
    norms[labeled] = -1
    assert res.picks[0] == int(np.argmax(norms))
    assert res.why[0] == pytest.approx(norms.max(), rel=1e-5)
    with_g = Embeddings(emb.features, emb.indices, 80, probs=emb.probs, grad_features=g.astype(np.float32))
    for seed in (7, 8, 9):
        assert list(select(with_g, "badge", 10, labeled=labeled, seed=seed).picks) == \
            list(select(emb, "badge", 10, labeled=labeled, seed=seed).picks)
    assert list(res.picks) == list(select(emb, "badge", 10, labeled=labeled, seed=7).picks)
    assert list(res.picks) != list(select(emb, "badge", 10, labeled=labeled, seed=8).picks)


# slow tier: 3,000 seeded draws (~10 s); BADGE's fast tests are the factorised distances and first pick
@pytest.mark.slow
def test_kmeanspp_draws_by_squared_distance():
    # two candidates left after the first center: draw probability must follow D²
    x = np.array([[0.0], [1.0], [3.0]], np.float32)
    probs = np.array([[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]], np.float32)  # point 0 has g = 0
    space = grad_space(Problem(x, np.zeros(0, np.int64), np.arange(3), 2, probs=probs), np.arange(3))
    assert np.argmax(space.sq) == 2
    seconds = [common.kmeanspp(space, 2, np.random.default_rng(s), first="max-norm")[0][1] for s in range(3000)]
    d2 = space.to(2)
    freq = np.bincount(seconds, minlength=3) / 3000
    assert np.allclose(freq, d2 / d2.sum(), atol=0.03)


# ---- ProbCover -----------------------------------------------------------------------------------------


def brute_cover(x, labeled, cand, delta, b):
    adj = pairwise_sq(x, x) < delta**2
    covered = adj[list(labeled)].any(axis=0) if len(labeled) else np.zeros(len(x), bool)
    picks, gains = [], []
    for _ in range(b):
        gain = np.array([(adj[i] & ~covered).sum() if i in cand and i not in picks else -1 for i in range(len(x))])
        i = int(np.argmax(gain))
        if gain[i] <= 0:
            break
        picks.append(i)
        gains.append(int(gain[i]))
        covered |= adj[i]
    return picks, gains, covered.sum()


def gap_delta(x: np.ndarray, q: float) -> float:
    """A δ in the middle of a gap between pairwise distances (far from every boundary)."""
    d = np.unique(np.sqrt(pairwise_sq(x, x)).round(6))
    d = d[d > 0]
    lo = int(q * d.size)
    gaps = np.diff(d[lo : lo + 50])
    j = lo + int(np.argmax(gaps))
    return float((d[j] + d[j + 1]) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probcover_matches_brute_force_greedy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(70, 3)).astype(np.float32)
    emb = make(x=x)
    labeled = sorted(rng.choice(70, 4, replace=False).tolist())
    delta = gap_delta(x, 0.1)
    res = select(emb, "probcover", 6, labeled=labeled, probcover_delta=delta)
    cand = set(range(70)) - set(labeled)
    picks, gains, covered = brute_cover(x, labeled, cand, delta, 6)
    assert list(res.picks[: len(picks)]) == picks
    assert list(res.why[: len(gains)]) == gains
    assert round(res.report["coverage_after"] * 70) == covered


def test_greedy_cover_fills_randomly_once_everything_is_covered():
    indptr = np.array([0, 2, 4, 5, 6])  # 0-1 one ball, 2 and 3 alone
    ids = np.array([0, 1, 0, 1, 2, 3])
    picks, gains, c0, c1 = greedy_cover(indptr, ids, np.ones(4, bool), 4, np.random.default_rng(0))
    assert list(picks[:3]) == [0, 2, 3] and list(gains) == [2, 1, 1, 0] and picks[3] == 1
    assert (c0, c1) == (0, 4)


def test_purity_delta_is_the_five_percent_quantile_of_distance_to_other_clusters():
    x, y = blobs(k=4, per=50, d=2)
    delta = purity_delta(x, np.arange(x.shape[0]), 4, seed=0)
    d = np.sqrt(pairwise_sq(x, x))
    d[y[:, None] == y[None, :]] = np.inf
    r = np.sort(d.min(axis=1))
    assert delta == pytest.approx(r[int(0.05 * r.size)], rel=1e-5)
    res = select(make(x=x), "probcover", 4, seed=0)
    assert res.report["delta"] == pytest.approx(delta)
    assert sorted(y[res.picks]) == [0, 1, 2, 3]


def test_probcover_refuses_too_large_graph():
    emb = make(n=50)
    with pytest.raises(AlcliError, match="probcover-max-pairs"):
        select(emb, "probcover", 3, probcover_delta=100.0, probcover_max_pairs=100)


# ---- kcenter-uncertain ---------------------------------------------------------------------------------


def test_kcenter_uncertain_is_greedy_over_the_uncertain_and_reports_whole_pool_radius():
    emb = make(n=90, d=3, seed=8)
    emb.mc_probs = None
    labeled = [2, 30, 61]
    res = select(emb, "kcenter-uncertain", 4, labeled=labeled, uncertain_pool_factor=3.0)
    ent = brute_entropy(emb.probs)
    ent[labeled] = -np.inf
    top = sorted(np.argsort(-ent, kind="stable")[:12].tolist())
    picks, _, _ = kcenter_greedy_bruteforce(emb.features, labeled, top, 4)
    assert list(res.picks) == picks
    x = emb.features.astype(np.float64)
    before = np.sqrt(pairwise_sq(x, x[labeled]).min(axis=1).max())
    after = np.sqrt(pairwise_sq(x, x[labeled + picks]).min(axis=1).max())
    assert res.radius_before == pytest.approx(before) and res.radius_after == pytest.approx(after)
    everything = select(emb, "kcenter-uncertain", 4, labeled=labeled, uncertain_pool_factor=100.0)
    assert list(everything.picks) == list(select(emb, "kcenter", 4, labeled=labeled).picks)


# ---- every method ----------------------------------------------------------------------------------------

RANDOMISED = {"badge", "oracle-uncertainty"}
MINE = ["badge", "bald", "entropy", "kcenter-uncertain", "kmedian", "least-confidence", "margin",
        "oracle-uncertainty", "probcover", "typiclust", "variation-ratios"]


@pytest.mark.parametrize("method", MINE)
def test_every_method_valid_and_deterministic_per_seed(method):
    x, y = blobs(k=6, per=20, d=4)
    emb = make(x=x, c=6, seed=9)
    emb.grad_features = None
    kw = {"labels": y} if "labels" in REGISTRY[method].needs else {}
    labeled = [0, 11, 40]
    a = select(emb, method, 7, labeled=labeled, seed=5, **kw)
    assert len(set(a.picks.tolist())) == 7 and not set(a.picks.tolist()) & set(labeled)
    if method != "random":
        assert a.why is not None and len(a.why) == 7 and a.why_name
    assert list(a.picks) == list(select(emb, method, 7, labeled=labeled, seed=5, **kw).picks)
    if method in RANDOMISED:
        others = [list(select(emb, method, 7, labeled=labeled, seed=s, **kw).picks) for s in (6, 7, 8)]
        assert any(o != list(a.picks) for o in others)



def brute_kmeanspp(g: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """Textbook BADGE seeding on materialised embeddings: max norm first, then D² draws (same draws)."""
    sq = (g * g).sum(axis=1)
    picks = [int(np.argmax(sq))]
    while len(picks) < k:
        mind = pairwise_sq(g, g[picks]).min(axis=1)
        cum = np.cumsum(mind)
        picks.append(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")))
    return picks


@pytest.mark.parametrize("seed", range(4))
def test_pruned_kmeanspp_equals_textbook(seed):
    x, _ = blobs(k=8, per=25, d=6, seed=seed)  # clustered, so the pruning skips most points
    emb = make(x=x / 10, c=5, seed=seed)
    rows = np.arange(x.shape[0])
    space = grad_space(Problem(emb.features, np.zeros(0, np.int64), rows, 1, probs=emb.probs), rows)
    picks, _ = common.kmeanspp(space, 40, np.random.default_rng(seed), first="max-norm")
    assert list(picks) == brute_kmeanspp(grad_embedding(emb.probs, emb.features), 40, np.random.default_rng(seed))


def test_typiclust_cap_takes_next_most_typical_round_robin():
    x, y = blobs(k=3, per=30, sizes=[40, 30, 20])
    res = select(make(x=x), "typiclust", 6, typiclust_max_clusters=3)
    assert list(y[res.picks]) == [0, 1, 2, 0, 1, 2]
    for blob in range(3):
        members = np.flatnonzero(y == blob)
        order = members[np.argsort(-brute_typicality(x[members], min(20, members.size // 2)), kind="stable")]
        assert list(res.picks[y[res.picks] == blob]) == list(order[:2])
