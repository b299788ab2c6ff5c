"""kcenter-robust (Algorithm 2 on CBC) against a brute-force optimum, its edge cases, and the CLI path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_alcli, shell
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from robust_oracle import robust_kcenter_bruteforce

from alcli.artifacts import Embeddings, LabeledSet, read_labeled, write_embeddings, write_labeled
from alcli.selection.base import Problem
from alcli.selection.robust import kcenter_robust, robust_sq

REPORT_KEYS = {"delta_greedy", "greedy_robust_radius", "robust_radius", "lower_bound", "certified_gap", "optimal",
               "outliers_allowed", "outliers_used", "outlier_positions", "iterations", "stopped_by",
               "time_budget_hit", "seconds", "headline", "neighbour_pairs", "cbc_solves"}


def _run(x: np.ndarray, labeled, budget: int, pool=None, **params):
    pool = np.arange(len(x)) if pool is None else np.asarray(pool)
    prob = Problem(features=np.asarray(x, np.float32), labeled=np.asarray(sorted(labeled), np.int64), pool=pool,
                   budget=budget, params=params)
    return prob, kcenter_robust(prob)


def _check_valid(prob: Problem, res) -> None:
    picks = np.asarray(res.picks)
    assert picks.size == prob.budget and np.unique(picks).size == picks.size
    assert np.isin(picks, prob.candidates).all()


def _true_radii(x: np.ndarray, centers: np.ndarray, outliers: int) -> tuple[float, float]:
    x = np.asarray(x, np.float64)
    d2 = ((x[:, None, :] - x[None, centers, :]) ** 2).sum(-1).min(axis=1)
    return float(np.sqrt(d2.max())), float(np.sqrt(robust_sq(d2, outliers)))


@st.composite
def instances(draw):
    n = draw(st.integers(3, 11))
    d = draw(st.integers(1, 3))
    coords = st.integers(-4, 4) if draw(st.booleans()) else st.floats(-10, 10, allow_nan=False, width=32)
    x = np.array(draw(st.lists(st.lists(coords, min_size=d, max_size=d), min_size=n, max_size=n)), np.float32)
    labeled = draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True))
    budget = draw(st.integers(1, min(3, n - len(labeled))))
    outliers = draw(st.integers(0, 3))
    return x, labeled, budget, outliers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_exact_mode_reaches_the_bruteforce_optimum(inst) -> None:
    x, labeled, budget, outliers = inst
    prob, res = _run(x, labeled, budget, outliers=outliers, exact=True)
    _check_valid(prob, res)
    opt, _ = robust_kcenter_bruteforce(x, labeled, range(len(x)), budget, outliers)
    rep = res.report
    assert rep["optimal"] is True
    assert rep["robust_radius"] == pytest.approx(opt, rel=1e-9, abs=1e-12)
    assert rep["robust_radius"] <= rep["greedy_robust_radius"] + 1e-12
    full, robust = _true_radii(x, np.r_[np.asarray(labeled, np.int64), res.picks].astype(np.int64), outliers)
    assert robust == pytest.approx(rep["robust_radius"], rel=1e-9, abs=1e-12)
    assert res.radius_after == pytest.approx(full, rel=1e-6, abs=1e-6)
    assert rep["outliers_used"] <= outliers


@settings(max_examples=40, deadline=None)
@given(instances())
def test_default_mode_bounds_bracket_the_optimum(inst) -> None:
    x, labeled, budget, outliers = inst
    prob, res = _run(x, labeled, budget, outliers=outliers)
    _check_valid(prob, res)
    opt, _ = robust_kcenter_bruteforce(x, labeled, range(len(x)), budget, outliers)
    rep = res.report
    assert opt - 1e-9 <= rep["robust_radius"] <= rep["greedy_robust_radius"] + 1e-12
    if rep["lower_bound"] is not None:  # certified: never above the true optimum
        assert rep["lower_bound"] <= opt * (1 + 1e-9) + 1e-12
    if outliers == 0:
        assert rep["lower_bound"] is not None and rep["certified_gap"] <= 0.01 + 1e-9 or rep["stopped_by"] != "gap"


def test_clustered_instance_improves_on_greedy_with_certified_gap() -> None:
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(12, 8)) * 4
    x = (centers[rng.integers(0, 12, 1500)] + rng.normal(size=(1500, 8)) * 0.7).astype(np.float32)
    labeled = rng.choice(1500, 15, replace=False)
    prob, res = _run(x, labeled, 30, outliers=0, gap=0.01)
    _check_valid(prob, res)
    rep = res.report
    assert rep["robust_radius"] <= rep["greedy_robust_radius"]
    assert rep["stopped_by"] == "gap" and rep["certified_gap"] <= 0.01 + 1e-9
    full, _ = _true_radii(x, np.r_[np.sort(labeled), res.picks].astype(np.int64), 0)
    assert full == pytest.approx(rep["robust_radius"], rel=1e-9) and res.radius_after == pytest.approx(full, rel=1e-6)
    assert rep["cbc_solves"] + sum(it["by"] == "precheck" for it in rep["iterations"]) == rep["tested"]
    assert rep.keys() >= REPORT_KEYS
    json.dumps(rep)


def test_degenerate_inputs() -> None:
    x = np.ones((20, 4), np.float32)  # all identical
    prob, res = _run(x, [0, 5], 4)
    _check_valid(prob, res)
    assert res.report["robust_radius"] == 0.0 and res.report["stopped_by"] == "trivial" and res.radius_after == 0.0
    y = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    prob, res = _run(y, [1, 2, 3], 27)  # b = every candidate
    _check_valid(prob, res)
    assert res.report["robust_radius"] == 0.0 and res.radius_after == 0.0
    prob, res = _run(y, [1, 2], 3, outliers=30)  # Ξ >= pool: any set is optimal
    _check_valid(prob, res)
    assert res.report["robust_radius"] == 0.0 and res.report["optimal"]
    prob, res = _run(y, [], 4, outliers=0, exact=True)  # no labelled set
    _check_valid(prob, res)
    assert res.radius_before is None
    assert res.report["robust_radius"] == pytest.approx(robust_kcenter_bruteforce(y, [], range(30), 4, 0)[0])
    for exact in (False, True):  # s0 leaves at most Ξ rows uncovered at some δ: an empty cover is feasible
        prob, res = _run(y, range(24), 1, outliers=3, exact=exact)
        _check_valid(prob, res)
        assert res.report["robust_radius"] == pytest.approx(robust_kcenter_bruteforce(y, range(24), range(30), 1, 3)[0])
    pool = np.setdiff1d(np.arange(30), [7, 8])  # excluded points are neither picked nor covered
    prob, res = _run(y, [1], 3, pool=pool, outliers=1, exact=True)
    _check_valid(prob, res)
    assert res.report["robust_radius"] == pytest.approx(robust_kcenter_bruteforce(y, [1], pool, 3, 1)[0])


def test_time_limit_still_returns_a_valid_set() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(40, 32))[rng.integers(0, 40, 30_000)] + rng.normal(size=(30_000, 32)) * 0.5)
    labeled = rng.choice(30_000, 30, replace=False)
    t0 = time.perf_counter()
    prob, res = _run(x.astype(np.float32), labeled, 3000, outliers=3, time_limit=1.0)
    elapsed = time.perf_counter() - t0
    _check_valid(prob, res)
    rep = res.report
    assert rep["robust_radius"] <= rep["greedy_robust_radius"]
    assert rep["time_budget_hit"] and rep["stopped_by"] == "time_limit"
    assert elapsed < 30


@pytest.fixture
def emb(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(8, 6))[rng.integers(0, 8, 400)] * 3 + rng.normal(size=(400, 6))).astype(np.float32)
    path = tmp_path / "emb.h5"
    write_embeddings(str(path), Embeddings(x, np.arange(400), 400))
    return path


def test_cli_through_a_real_pipe(tmp_path: Path, emb: Path) -> None:
    lab = tmp_path / "l0.h5"
    write_labeled(str(lab), LabeledSet(np.array([3, 50, 99]), np.zeros(3, np.int32), 400))
    proc = shell(f"alcli select {emb} --labeled {lab} -b 12 --method kcenter-robust --outliers 2 "
                 "| tee out.h5 | alcli info -", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "robust radius" in proc.stderr and "lower bound" in proc.stderr
    got = read_labeled(str(tmp_path / "out.h5"))
    assert got.last_picks.size == 12 and got.attrs["method"] == "kcenter-robust"
    rep = got.report
    assert rep.keys() >= REPORT_KEYS and rep["outliers_allowed"] == 2 and rep["params"]["outliers"] == 2
    assert rep["robust_radius"] <= rep["greedy_robust_radius"]


def test_cli_pair_limit_falls_back_to_greedy_with_a_warning(tmp_path: Path, emb: Path) -> None:
    out = tmp_path / "out.h5"
    proc = run_alcli("select", emb, "-b", "5", "--method", "kcenter-robust", "--max-pairs", "10", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "--max-pairs" in proc.stderr
    rep = read_labeled(str(out)).report
    assert rep["stopped_by"] == "max_pairs" and not rep["used_mip_solution"]
    assert rep["robust_radius"] == rep["greedy_robust_radius"]


@pytest.mark.parametrize(("args", "flag"), [
    (["--outliers", "-1"], "--outliers"),
    (["--outliers", "1", "--outlier-fraction", "0.1"], "--outliers"),
    (["--outlier-fraction", "2"], "--outlier-fraction"),
    (["--gap", "-0.5"], "--gap"),
    (["--time-limit", "0"], "--time-limit"),
    (["--max-pairs", "0"], "--max-pairs"),
])
def test_cli_bad_options(tmp_path: Path, emb: Path, args: list[str], flag: str) -> None:
    proc = run_alcli("select", emb, "-b", "5", "--method", "kcenter-robust", *args, "-o", tmp_path / "x.h5")
    assert_one_line_error(proc, flag)
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("n_labeled", [0, 40])
def test_top_up_reuses_s0_distances_and_matches_a_fresh_greedy(n_labeled: int) -> None:
    from alcli.kcenter.greedy import kcenter_greedy
    from alcli.kcenter.shard import GreedyShard
    from alcli.selection.robust import _top_up_shard

    rng = np.random.default_rng(7)
    x = (rng.normal(size=(20, 16))[rng.integers(0, 20, 3000)] * 2 + rng.normal(size=(3000, 16))).astype(np.float32)
    s0 = np.sort(rng.choice(3000, n_labeled, replace=False))
    cand = np.setdiff1d(np.arange(3000), s0)
    first = GreedyShard(x, cand, cand)
    if s0.size:
        first.start(x[s0])
    s0_sq = np.maximum(first.s, 0.0) if s0.size else np.full(cand.size, np.inf)
    best = np.sort(rng.choice(cand, 25, replace=False))
    rest = np.setdiff1d(cand, best)
    centers = np.union1d(s0, best)
    shard = _top_up_shard(x, s0, cand, s0_sq, first.assign.copy(), best, rest, centers)
    ours = kcenter_greedy(x, centers, rest, 60, shards=[shard])
    fresh = kcenter_greedy(x, centers, rest, 60)
    assert ours.picks.tolist() == fresh.picks.tolist()
    assert ours.radius_before == fresh.radius_before and ours.radius_after == fresh.radius_after
