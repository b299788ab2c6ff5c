"""The ball-pruned nearest-center search (alcli.kcenter.groupsearch) against a float64 brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import kcenter_greedy_bruteforce

from alcli.kcenter import distance, groupsearch
from alcli.kcenter.greedy import CenterBounds, kcenter_greedy


def brute(x: np.ndarray, rows: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (point, center) distance by `sqdist_exact`; the minimum and its lowest center index."""
    d2 = np.stack([distance.sqdist_exact(x[rows], c) for c in centers.astype(np.float64)], axis=1)
    return d2.min(axis=1), np.argmin(d2, axis=1)


def blobs(rng: np.random.Generator, n: int, d: int, modes: int, spread: float) -> np.ndarray:
    means = rng.normal(size=(modes, d))
    return means[rng.integers(0, modes, size=n)] + spread * rng.normal(size=(n, d))


@st.composite
def instances(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = draw(st.integers(1, 64))
    k = draw(st.integers(1, 300))
    n = draw(st.integers(1, 400))
    style = draw(st.sampled_from(["blobs", "duplicates", "grid", "outliers", "far", "uniform"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if style == "blobs":
        x = blobs(rng, n + k, d, draw(st.integers(1, 40)), draw(st.sampled_from([0.01, 0.1, 0.5])))
    elif style == "duplicates":  # bitwise-equal centers, and points equal to centers
        base = rng.normal(size=(max(1, (n + k) // 5), d))
        x = base[rng.integers(0, len(base), size=n + k)]
    elif style == "grid":  # many exact ties
        x = rng.integers(-2, 3, size=(n + k, d)).astype(float)
    elif style == "outliers":  # a few points and centers at large norms
        x = blobs(rng, n + k, d, 8, 0.2)
        x[rng.random(n + k) < 0.05] *= 1e3
    elif style == "far":  # far from the origin: float32 cancellation
        x = 1e4 + blobs(rng, n + k, d, 5, 1.0)
    else:
        x = rng.uniform(-1, 1, size=(n + k, d))
    x = x.astype(np.float32)
    order = rng.permutation(n + k)
    return x, np.sort(order[k:]), x[np.sort(order[:k])]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(instances(), st.integers(1, 40), st.sampled_from([7, 64, 4096]), st.booleans())
def test_grouped_equals_bruteforce(inst: tuple[np.ndarray, np.ndarray, np.ndarray], groups: int, block: int,
                                   loose: bool) -> None:
    """Exact distances and nearest centers; with `loose`, the points the pruning settles have the right
    nearest center and bounds lo ≤ exact ≤ s (the exact value is never below the float64 one)."""
    x, rows, centers = inst
    s, near, counts = groupsearch.nearest_grouped(x, rows, centers, groups=groups, loose=loose, _force=True,
                                                  _block=block)
    s_ref, near_ref = brute(x, rows, centers)
    assert np.array_equal(near, near_ref)
    if loose:
        lax = counts["loose"]
        assert np.all(counts["lo"][lax] <= s_ref[lax]) and np.all(s_ref[lax] <= s[lax])
        s, s_ref = s[~lax], s_ref[~lax]
    assert s.tobytes() == s_ref.tobytes()
    assert counts["method"] == "grouped"
    assert np.array_equal(counts["norms"], np.sqrt(distance.sqnorms_rows(x, rows)))


def test_guard_small_k_and_spread_points_take_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(groupsearch, "MIN_WORK", 0)  # this small problem would go to FAISS directly
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(30_000, 64)).astype(np.float32)  # no clusters: balls prune nothing
    rows, centers = np.arange(600, 30_000), x[:600]
    s, near, counts = groupsearch.nearest_grouped(x, rows, centers)
    assert counts["method"] == "grouped+faiss" and counts["pairs_visited"] > groupsearch.VISIT_LIMIT
    s_ref, near_ref, _ = distance.nearest_exact(x, rows, centers)
    assert s.tobytes() == s_ref.tobytes() and np.array_equal(near, near_ref)
    assert groupsearch.nearest_grouped(x, rows, centers[:100])[2]["method"] == "faiss"  # k < MIN_CENTERS
    monkeypatch.undo()
    assert groupsearch.nearest_grouped(x, rows, centers)[2]["method"] == "faiss"  # little work


def test_clustered_points_visit_few_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(groupsearch, "MIN_WORK", 0)
    rng = np.random.default_rng(1)
    x = blobs(rng, 20_000, 32, 50, 0.05).astype(np.float32)
    centers = np.concatenate([x[:500], x[:40]])  # duplicates of the first 40
    rows = np.arange(500, 20_000)
    s, near, counts = groupsearch.nearest_grouped(x, rows, centers)
    assert counts["method"] == "grouped" and counts["pairs_visited"] < 0.1
    s_ref, near_ref, _ = distance.nearest_exact(x, rows, centers)
    assert s.tobytes() == s_ref.tobytes() and np.array_equal(near, near_ref)
    assert near.max() < 500  # a duplicate center reports its first copy


def test_kcenter_greedy_grouped_start_same_picks() -> None:
    rng = np.random.default_rng(2)
    x = blobs(rng, 1200, 16, 12, 0.1).astype(np.float32)
    labeled, candidates = np.arange(0, 1200, 6), np.setdiff1d(np.arange(1200), np.arange(0, 1200, 6))
    runs = {start: kcenter_greedy(x, labeled, candidates, 30, _start=start) for start in ("grouped", "faiss")}
    picks, before, after = kcenter_greedy_bruteforce(x, labeled, candidates, 30)
    for res in runs.values():
        assert res.picks.tolist() == [int(p) for p in picks]
        assert res.radius_after == pytest.approx(after, rel=1e-12)
    assert runs["grouped"].profile["start"] == "grouped" and runs["faiss"].profile["start"] == "faiss"
    assert 0 < runs["grouped"].profile["start_pairs_visited"] < 1 and runs["grouped"].profile["start_groups"] > 1
    assert runs["grouped"].profile["points_loose"] > 0  # the start left points loose, and measured fewer pairs
    assert runs["grouped"].measured < runs["faiss"].measured


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(instances(), st.integers(1, 60))
def test_kcenter_greedy_loose_start_equals_bruteforce(inst: tuple[np.ndarray, np.ndarray, np.ndarray],
                                                       budget: int) -> None:
    """The grouped start leaves most points loose (bounds, no measurement): the greedy measures them when a
    pick or a fold needs them, and its picks, scores and radii are the textbook algorithm's."""
    x, rows, centers = inst
    k, budget = centers.shape[0], min(budget, rows.size)  # the oracle picks no more than there are
    everything = np.concatenate([centers, x[rows]])
    labeled, candidates = np.arange(k), np.arange(k, k + rows.size)
    res = kcenter_greedy(everything, labeled, candidates, budget, _start="grouped")
    picks, before, after = kcenter_greedy_bruteforce(everything, labeled, candidates, budget)
    assert res.picks.tolist() == [int(p) for p in picks]
    assert res.radius_before == pytest.approx(before, rel=1e-12)
    assert res.radius_after == pytest.approx(after, rel=1e-12, abs=1e-300)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(instances(), st.integers(1, 70))
def test_center_bounds_never_exceed_the_exact_distances(inst: tuple[np.ndarray, np.ndarray, np.ndarray],
                                                        m: int) -> None:
    """CenterBounds.lower_many (per pair) and lower_nearest (per center, to the nearest new one) are lower
    bounds on the float64 squared distances, on every shape (outliers at 1e3×, far from the origin, ties)."""
    x, rows, centers = inst
    new = x[rows[:m]]
    bounds = CenterBounds(centers.shape[0] + new.shape[0], x.shape[1])
    bounds.add(centers)
    exact = np.stack([distance.sqdist_exact(centers, v) for v in new.astype(np.float64)], axis=1)  # k×m
    pairs, nearest = bounds.lower_many(new), bounds.lower_nearest(new)
    assert pairs.shape == exact.shape and nearest.shape == (centers.shape[0], 1)
    assert np.all(pairs <= exact) and np.all(nearest[:, 0] <= exact.min(axis=1))


def test_lower_nearest_is_tight_on_separated_points() -> None:
    """Not a vacuous bound: within 0.2% of the exact value on blobs (the float32 error bound is ~0.07% here)."""
    rng = np.random.default_rng(3)
    x = blobs(rng, 3000, 128, 30, 0.3).astype(np.float32)
    bounds = CenterBounds(3000, 128)
    bounds.add(x[:2000])
    exact = np.stack([distance.sqdist_exact(x[:2000], v) for v in x[2000:2064].astype(np.float64)], axis=1)
    low = bounds.lower_nearest(x[2000:2064])[:, 0]
    assert np.all(low <= exact.min(axis=1)) and np.all(low >= exact.min(axis=1) * (1 - 2e-3))
