"""Property tests (hypothesis): probcover's greedy and the uncertainty scores against brute force."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import pairwise_sq
from test_strategies import brute_cover, brute_entropy, grad_embedding, make, select

from alcli.selection.badge import grad_space
from alcli.selection.base import Problem


@st.composite
def lattice(draw):
    """Small integer points (exact in float32) and a δ² halfway between integers: no boundary ties."""
    n = draw(st.integers(4, 30))
    pts = draw(st.lists(st.tuples(st.integers(-4, 4), st.integers(-4, 4)), min_size=n, max_size=n))
    x = np.array(pts, np.float32)
    nlab = draw(st.integers(0, 3))
    labeled = sorted(set(draw(st.lists(st.integers(0, n - 1), min_size=nlab, max_size=nlab))))
    b = draw(st.integers(1, n - len(labeled)))
    delta2 = draw(st.integers(0, 12)) + 0.5
    return x, labeled, b, delta2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lattice())
def test_probcover_greedy_equals_brute_force(case):
    x, labeled, b, delta2 = case
    res = select(make(x=x), "probcover", b, labeled=labeled, probcover_delta=float(np.sqrt(delta2)))
    cand = set(range(len(x))) - set(labeled)
    picks, gains, covered = brute_cover(x, labeled, cand, np.sqrt(delta2), b)
    assert list(res.picks[: len(picks)]) == picks and list(res.why[: len(gains)]) == gains
    assert np.all(res.why[len(gains) :] == 0)
    assert round(res.report["coverage_after"] * len(x)) == covered


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.integers(2, 6), st.integers(1, 4), st.integers(0, 2**16))
def test_scores_equal_brute_force(n, c, t, seed):
    emb = make(n=n, c=c, t=t, seed=seed, temp=4.0)
    b = max(1, n // 3)
    mc = emb.mc_probs.astype(np.float64)
    mean = mc.mean(axis=0)
    ent = select(emb, "entropy", b)
    assert np.allclose(ent.why, brute_entropy(mean)[ent.picks], atol=1e-6)  # float32 probs
    assert ent.why.min() >= np.sort(brute_entropy(mean))[-b] - 1e-6  # probs are float32, renormalised
    bald = select(emb, "bald", b)
    brute = brute_entropy(mean) - np.mean([brute_entropy(mc[k]) for k in range(t)], axis=0)
    assert np.allclose(bald.why, brute[bald.picks], atol=1e-6)
    assert bald.why.min() >= np.sort(brute)[-b] - 1e-6
    g = grad_embedding(emb.probs, emb.features)
    rows = np.arange(n)
    space = grad_space(Problem(emb.features, np.zeros(0, np.int64), rows, 1, probs=emb.probs), rows)
    i = seed % n
    assert np.allclose(space.to(i), pairwise_sq(g, g[i : i + 1])[:, 0], rtol=1e-4, atol=1e-4)
