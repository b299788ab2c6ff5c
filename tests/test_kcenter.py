"""Exact k-Center-Greedy against the textbook algorithm with a full distance matrix."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import kcenter_greedy_bruteforce, pairwise_sq

from alcli.kcenter.greedy import covering_radius, kcenter_greedy
from alcli.kcenter.shard import GreedyShard


@st.composite
def instances(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n = draw(st.integers(1, 24))
    d = draw(st.integers(1, 4))
    style = draw(st.sampled_from(["float", "grid", "duplicates", "identical", "far"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if style == "float":
        x = rng.normal(size=(n, d)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    elif style == "grid":  # many exact ties
        x = rng.integers(-2, 3, size=(n, d)).astype(float)
    elif style == "duplicates":
        base = rng.normal(size=(max(1, n // 3), d))
        x = base[rng.integers(0, len(base), size=n)]
    elif style == "identical":
        x = np.repeat(rng.normal(size=(1, d)), n, axis=0)
    else:  # far from the origin: float32 cancellation territory
        x = 1e4 + rng.normal(size=(n, d))
    x = x.astype(np.float32)
    perm = rng.permutation(n)
    n_lab = draw(st.integers(0, n - 1))
    n_excl = draw(st.integers(0, n - 1 - n_lab))
    labeled = np.sort(perm[:n_lab])
    candidates = np.sort(perm[n_lab + n_excl :])
    budget = draw(st.integers(1, candidates.size))
    return x, labeled, candidates, budget


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_greedy_equals_bruteforce(inst: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
    x, labeled, candidates, budget = inst
    got = kcenter_greedy(x, labeled, candidates, budget)
    picks, before, after = kcenter_greedy_bruteforce(x, labeled, candidates, budget)
    assert got.picks.tolist() == [int(p) for p in picks]
    if before is None:
        assert got.radius_before is None
    else:
        assert got.radius_before == pytest.approx(before, rel=1e-12, abs=1e-12)
    assert got.radius_after == pytest.approx(after, rel=1e-12, abs=1e-12)
    # each pick's score is its distance to the nearest center when picked (NaN for a first pick from nothing)
    assert got.scores.shape == (budget,)


def test_scores_are_the_radius_sequence() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    labeled, cand = np.arange(10), np.arange(10, 300)
    res = kcenter_greedy(x, labeled, cand, 50)
    assert res.scores[0] == pytest.approx(res.radius_before)
    assert np.all(np.diff(res.scores) <= 1e-12)  # farthest-first distances never grow
    assert res.radius_after <= res.scores[-1]


def test_budget_equal_to_pool_and_identical_points() -> None:
    x = np.ones((7, 3), np.float32)
    res = kcenter_greedy(x, np.array([2]), np.array([0, 1, 3, 4, 5, 6]), 6)
    assert res.picks.tolist() == [0, 1, 3, 4, 5, 6]  # all ties: lowest index first
    assert res.radius_before == 0.0 and res.radius_after == 0.0


def test_pruning_skips_work_but_not_picks() -> None:
    """On clustered data the triangle-inequality test leaves most points unmeasured per step."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 16)) * 10
    x = (centers[rng.integers(0, 20, 4000)] + rng.normal(size=(4000, 16))).astype(np.float32)
    labeled, cand = np.arange(100), np.arange(100, 4000)
    res = kcenter_greedy(x, labeled, cand, 200)
    naive_measurements = cand.size * (1 + 200)
    assert res.measured < naive_measurements / 5
    # and the result is the exact one (float64 brute force on the same data, computed in blocks)
    mind = np.full(cand.size, np.inf)
    picks = []
    for c in labeled:
        mind = np.minimum(mind, ((x[cand].astype(float) - x[c].astype(float)) ** 2).sum(1))
    for _ in range(200):
        j = int(np.argmax(mind))
        picks.append(int(cand[j]))
        mind = np.minimum(mind, ((x[cand].astype(float) - x[cand[j]].astype(float)) ** 2).sum(1))
        mind[j] = -1
    assert res.picks.tolist() == picks


def test_shards_reduce_to_the_same_picks() -> None:
    """Splitting the points over shards (as a cluster does) changes nothing."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    labeled, cand = np.arange(0, 500, 50), np.setdiff1d(np.arange(500), np.arange(0, 500, 50))
    one = kcenter_greedy(x, labeled, cand, 40)
    parts = np.array_split(cand, 3)
    shards = [GreedyShard(x, p, p) for p in parts]
    many = kcenter_greedy(x, labeled, cand, 40, shards=shards)
    assert many.picks.tolist() == one.picks.tolist()
    assert many.radius_after == one.radius_after


@settings(max_examples=60, deadline=None)
@given(instances())
def test_covering_radius(inst: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
    x, labeled, candidates, _ = inst
    pool = np.union1d(labeled, candidates)
    got = covering_radius(x, labeled, pool)
    if labeled.size == 0:
        assert got is None
        return
    want = np.sqrt(pairwise_sq(x[candidates], x[labeled]).min(axis=1).max()) if candidates.size else 0.0
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
