"""k-Center-Greedy and its exact nearest-center start on awkward shapes of data, against brute force:
outliers with a large norm, blobs of uneven size and spread, exact duplicates, all-identical points,
zero vectors. Small inputs with many centers, so every path of the start (listed neighbours, the
per-band bound on unlisted centers, the blocked exact scan) is taken."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import kcenter_greedy_bruteforce, pairwise_sq

from alcli.kcenter import distance
from alcli.kcenter.greedy import kcenter_greedy, plan

STYLES = ["outliers", "uneven", "duplicates", "identical", "zeros"]


def shaped(style: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    if style == "outliers":  # blobs, and a few points at 3× to 1000× the typical norm
        x = rng.normal(size=(4, d))[rng.integers(0, 4, n)] + 0.2 * rng.normal(size=(n, d))
        far = rng.choice(n, size=max(1, n // 20), replace=False)
        x[far] *= rng.choice([3.0, 30.0, 1000.0], size=(far.size, 1))
    elif style == "uneven":  # one big tight blob, a few small wide ones
        weights = np.array([0.8, 0.1, 0.05, 0.05])
        lab = rng.choice(4, size=n, p=weights)
        x = rng.normal(size=(4, d))[lab] * 5 + rng.normal(size=(n, d)) * np.array([0.01, 1.0, 2.0, 0.3])[lab, None]
    elif style == "duplicates":  # few distinct rows, each repeated many times
        x = rng.normal(size=(max(1, n // 12), d))[rng.integers(0, max(1, n // 12), n)]
    elif style == "identical":
        x = np.repeat(rng.normal(size=(1, d)), n, axis=0)
    else:  # zero vectors among small ones, and exact ±unit ties around the origin
        x = rng.normal(size=(n, d)) * 1e-3
        x[rng.random(n) < 0.3] = 0.0
        x[: min(n, 2 * d)] = np.concatenate([np.eye(d), -np.eye(d)])[: min(n, 2 * d)]
    return x.astype(np.float32)


@st.composite
def instances(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n = draw(st.integers(2, 60))
    d = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = shaped(draw(st.sampled_from(STYLES)), n, d, rng)
    perm = rng.permutation(n)
    n_lab = draw(st.integers(0, n - 1))
    labeled = np.sort(perm[:n_lab])
    candidates = np.sort(perm[n_lab:])
    budget = draw(st.integers(1, min(candidates.size, 20)))
    return x, labeled, candidates, budget


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_greedy_on_awkward_shapes_equals_bruteforce(inst: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
    x, labeled, candidates, budget = inst
    got = kcenter_greedy(x, labeled, candidates, budget)
    picks, before, after = kcenter_greedy_bruteforce(x, labeled, candidates, budget)
    assert got.picks.tolist() == [int(p) for p in picks]
    assert (got.radius_before is None) == (before is None)
    if before is not None:
        assert got.radius_before == pytest.approx(before, rel=1e-12, abs=1e-12)
    assert got.radius_after == pytest.approx(after, rel=1e-12, abs=1e-12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(STYLES), st.integers(2, 80), st.integers(1, 6), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_nearest_exact_equals_bruteforce(style: str, n: int, d: int, k: int, seed: int) -> None:
    """Any number of listed neighbours k: the start's answer is the exact nearest center."""
    rng = np.random.default_rng(seed)
    x = shaped(style, n, d, rng)
    centers = np.sort(rng.choice(n, size=rng.integers(1, n + 1), replace=False))
    rows = np.arange(n)
    s, near, _ = distance.nearest_exact(x, rows, x[centers], k=k)
    full = pairwise_sq(x, x[centers])
    np.testing.assert_allclose(s, full.min(axis=1), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(full[rows, near], full.min(axis=1), rtol=1e-12, atol=1e-300)


def test_outliers_do_not_send_points_to_the_scan() -> None:
    """A few centers with 3× the typical norm: every other point is decided by its listed neighbours."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(20, 64))[rng.integers(0, 20, 3000)] + 0.1 * rng.normal(size=(3000, 64))).astype(np.float32)
    x[rng.choice(3000, 15, replace=False)] *= 3
    s, near, counts = distance.nearest_exact(x, np.arange(500, 3000), x[:500], k=4)
    assert counts["points_scanned"] <= 15
    full = np.stack([((x[500:].astype(float) - x[j].astype(float)) ** 2).sum(1) for j in range(500)], axis=1)
    np.testing.assert_allclose(s, full.min(axis=1), rtol=1e-12)


def test_equidistant_centers_take_the_exact_scan() -> None:
    """The origin is equally far from ±e_i: no list of 2 neighbours can decide, the scan does (lowest id)."""
    d = 6
    centers = np.concatenate([np.eye(d), -np.eye(d), np.eye(d)]).astype(np.float32)  # with duplicates
    x = np.zeros((3, d), np.float32)
    x[1, 0] = 1e-3
    s, near, counts = distance.nearest_exact(x, np.arange(3), centers, k=2)
    assert counts["points_scanned"] >= 1
    assert s.tolist() == pytest.approx([1.0, (1 - 1e-3) ** 2, 1.0], rel=1e-6)
    assert near.tolist() == [0, 0, 0]


@pytest.mark.parametrize("style", ["uneven", "outliers", "duplicates"])
def test_several_picks_a_pass_equal_one_a_pass(style: str) -> None:
    """The plan proves many picks a pass on blobs; the picks and radii equal one pick a pass."""
    rng = np.random.default_rng(7)
    x = shaped(style, 3000, 16, rng)
    for labeled in (np.arange(0, 3000, 40), np.zeros(0, np.int64)):
        cand = np.setdiff1d(np.arange(3000), labeled)
        one = kcenter_greedy(x, labeled, cand, 150, top_k=1, dense_top_k=1)
        many = kcenter_greedy(x, labeled, cand, 150)
        assert many.picks.tolist() == one.picks.tolist()
        np.testing.assert_allclose(many.scores, one.scores, rtol=1e-12)
        assert many.radius_after == pytest.approx(one.radius_after, rel=1e-12)
        assert one.profile["picks_per_pass"] == 1.0
        if style != "duplicates":
            assert many.profile["picks_per_pass"] > 3


@pytest.mark.parametrize("style", ["outliers", "uneven"])
def test_plan_is_the_greedy_on_its_rivals_and_stops_at_its_work(style: str) -> None:
    """plan's picks are single greedy steps over the rivals (exact float64 folds behind its float32 screen),
    while they beat the bound; a work limit cuts that sequence short, never changes it."""
    rng = np.random.default_rng(5)
    vecs = shaped(style, 400, 24, rng).astype(np.float32)
    vals = rng.uniform(50.0, 100.0, 400)
    pos = np.arange(400) * 3
    bound = 60.0
    chosen, values = plan(vals, pos, vecs, bound, 400)
    cur = vals.copy()
    sq = pairwise_sq(vecs.astype(np.float64), vecs.astype(np.float64))
    for t, i in enumerate(chosen.tolist()):  # brute force: the largest current value, clear of the rest
        assert values[t] == pytest.approx(cur[i], rel=1e-12) and i == int(np.argmax(cur))
        cur = np.minimum(cur, sq[i])
        cur[chosen[: t + 1]] = -1.0
    assert chosen.size > 5
    sizes = []
    for work in (1, 300, 450, 600):
        cut, _ = plan(vals, pos, vecs, bound, 400, work=work)
        assert cut.tolist() == chosen[: cut.size].tolist()
        sizes.append(cut.size)
    assert sizes[0] == 2 and sizes == sorted(sizes) and sizes[-1] < chosen.size


@pytest.mark.parametrize("style", ["outliers", "uneven", "duplicates", "zeros"])
def test_loose_points_keep_the_bruteforce_picks(style: str) -> None:
    """With no labelled set the first passes fold every point: most take their new nearest center on float32
    bounds alone (loose) and are measured only when a decision needs them. Picks and scores stay exact."""
    rng = np.random.default_rng(11)
    x = shaped(style, 1500, 8, rng)
    cand = np.arange(1500)
    got = kcenter_greedy(x, np.zeros(0, np.int64), cand, 120, dense_top_k=128)  # 8192 would plan it all at once
    picks, _, after = kcenter_greedy_bruteforce(x, np.zeros(0, np.int64), cand, 120)
    assert got.picks.tolist() == [int(p) for p in picks]
    assert got.radius_after == pytest.approx(after, rel=1e-12, abs=1e-12)
    sq = pairwise_sq(x, x)
    for t in range(1, got.picks.size):  # each score: the pick's exact distance to the centers before it
        assert got.scores[t] ** 2 == pytest.approx(sq[got.picks[t], got.picks[:t]].min(), rel=1e-12, abs=1e-12)
    if style != "duplicates":
        assert got.profile["points_loose"] > 1500


def test_exact_scan_over_several_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan's blocks of points and of centers (tiny here) give the brute-force nearest."""
    monkeypatch.setattr(distance, "SCAN_BLOCK_BYTES", 8 * 4 * 7)  # 7 centers, 7 points a block at d=4
    rng = np.random.default_rng(3)
    x = shaped("duplicates", 90, 4, rng)
    x[:8] = np.concatenate([np.eye(4), -np.eye(4)])
    x[8:12] = 0.0
    centers = np.arange(0, 90, 2)
    s, near, counts = distance.nearest_exact(x, np.arange(90), x[centers], k=1)
    full = pairwise_sq(x, x[centers])
    np.testing.assert_allclose(s, full.min(axis=1), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(full[np.arange(90), near], full.min(axis=1), rtol=1e-12, atol=1e-300)
    assert counts["points_scanned"] > 0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_nonzero2_equals_numpys(rows: int, cols: int, density: float, seed: int) -> None:
    mask = np.random.default_rng(seed).random((rows, cols)) < density
    for got, want in zip(distance.nonzero2(mask), np.nonzero(mask), strict=True):
        assert got.tolist() == want.tolist()
    got = distance.nonzero2(mask.T)  # not C-contiguous: still row-major order
    assert [a.tolist() for a in got] == [a.tolist() for a in np.nonzero(mask.T)]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-3e38, max_value=3e38), max_size=50))
def test_up32_never_rounds_down(values: list[float]) -> None:
    t = np.array(values, np.float64)
    assert (distance.up32(t).astype(np.float64) >= t).all()


def test_first_pick_tie_at_the_mean_equals_the_oracle() -> None:
    """Found by the busy soak (hypothesis): with no labelled set, rows 0 and 4 are at exactly the same real
    distance (5.88) from the candidates' mean, which float64 cannot hold; the oracle summed the squares in
    another order than alcli and called the other one farther. Both now use alcli's recipe: row 0."""
    x = np.array([[0, 1, -2, -1], [-1, 2, 1, -1], [1, 2, 2, 1], [-2, -1, -2, 1], [1, -1, -2, 2],
                  [-2, -1, -2, 0], [0, -1, 1, 1], [-1, -2, -1, 0], [2, 1, -2, -2]], np.float32)
    cand = np.array([0, 3, 4, 5, 7])
    picks, _, _ = kcenter_greedy_bruteforce(x, np.zeros(0, np.int64), cand, 3)
    assert kcenter_greedy(x, np.zeros(0, np.int64), cand, 3).picks.tolist() == [int(p) for p in picks]
    assert int(picks[0]) == 0
