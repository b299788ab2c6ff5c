"""`bmdr`: its QP against the objective's definition, brute force over every batch, a reference solver
(scipy), the low-rank path against the exact kernel, determinism, and the CLI's checks."""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest
from conftest import assert_one_line_error, run_alcli
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alcli.artifacts import Embeddings, LabeledSet
from alcli.selection import bmdr
from alcli.selection.base import Problem
from alcli.selection.run import select_round


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def problem(n: int, n_l: int, b: int, seed: int, c: int = 3, d: int = 2) -> Problem:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    lab = np.sort(rng.choice(n, size=n_l, replace=False))
    return Problem(x, lab, np.arange(n), b, seed=seed, probs=softmax(2 * rng.normal(size=(n, c))))


def kernel(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    """exp(-|a-b|²/2σ²) pair by pair (independent of bmdr.rbf_block)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.array([[np.exp(-np.sum((u - v) ** 2) / (2 * sigma**2)) for v in b] for u in a])


def objective(pr: Problem, batch: tuple[int, ...], beta: float, sigma: float) -> float:
    """J(Q) = Σ_{j∈Q} (m_j² + 2 m_j) + β/2 (|L| + b)² MMD²(L ∪ Q, pool), straight from the definitions."""
    x = pr.features.astype(np.float64)
    p = pr.probs.astype(np.float64)
    top = np.sort(p / p.sum(axis=1, keepdims=True), axis=1)
    m = top[:, -1] - top[:, -2]
    s = np.r_[pr.labeled, np.asarray(batch, np.int64)]
    mmd2 = kernel(x[s], x[s], sigma).mean() - 2 * kernel(x[s], x, sigma).mean() + kernel(x, x, sigma).mean()
    return float(sum(m[j] ** 2 + 2 * m[j] for j in batch) + beta / 2 * s.size**2 * mmd2)


def qp_of(pr: Problem, beta: float, sigma: float) -> tuple[bmdr.QP, bmdr.KernelSums]:
    cand = pr.candidates
    d, _ = bmdr.discriminative(pr, cand)
    sums = bmdr.exact_sums(pr.features, pr.labeled, cand, 1 / (2 * sigma**2))
    return bmdr.build_qp(d, sums, pr.labeled.size, pr.budget, beta), sums


def onehot(n: int, positions: tuple[int, ...]) -> np.ndarray:
    a = np.zeros(n)
    a[list(positions)] = 1.0
    return a


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(4, 9), n_l=st.integers(0, 3), b=st.integers(1, 3), seed=st.integers(0, 10**6),
       beta=st.sampled_from([0.0, 0.1, 1.0, 10.0]), sigma=st.sampled_from([0.5, 1.0, 3.0]))
def test_qp_is_the_objective_and_the_relaxation_bounds_every_batch(n, n_l, b, seed, beta, sigma):
    assume(n - n_l >= b)
    pr = problem(n, n_l, b, seed)
    qp, sums = qp_of(pr, beta, sigma)
    cand = pr.candidates
    batches = list(itertools.combinations(range(cand.size), b))
    j_def = np.array([objective(pr, tuple(cand[list(q)]), beta, sigma) for q in batches])
    j_qp = np.array([qp.value(onehot(cand.size, q)) for q in batches])
    # the QP equals J up to one constant, for every batch
    shift = j_def - j_qp
    assert np.allclose(shift, shift[0], rtol=0, atol=1e-8 * max(1.0, np.abs(j_def).max()))
    # MMD² from the kernel sums is the definition's
    q0 = batches[0]
    s = np.r_[pr.labeled, cand[list(q0)]]
    x = pr.features
    want = kernel(x[s], x[s], sigma).mean() - 2 * kernel(x[s], x, sigma).mean() + kernel(x, x, sigma).mean()
    assert bmdr.mmd2(sums, n_l, onehot(cand.size, q0)) == pytest.approx(want, abs=1e-10)
    # Clarabel's relaxed optimum: feasible, no worse than scipy's on the same QP, below every batch
    alpha, info = bmdr.solve(qp)
    assert info["status"] == "Solved"
    assert alpha.sum() == pytest.approx(b, abs=1e-5) and alpha.min() >= 0 and alpha.max() <= 1
    assert qp.value(alpha) <= reference_qp(qp) + 1e-5 * max(1.0, abs(qp.value(alpha)))
    assert qp.value(alpha) <= j_qp.min() + 1e-6 * max(1.0, abs(j_qp.min()))
    # when the relaxation is integral its batch is the brute-force optimum
    if np.all(np.minimum(alpha, 1 - alpha) < 1e-6):
        best = batches[int(np.argmin(j_def))]
        assert set(np.flatnonzero(alpha > 0.5)) == set(best) or j_def.min() == pytest.approx(
            j_def[batches.index(tuple(np.flatnonzero(alpha > 0.5)))], rel=1e-9)


def reference_qp(qp: bmdr.QP) -> float:
    """The same QP by scipy's SLSQP from several starts: its best objective value."""
    from scipy.optimize import minimize

    n = qp.q.size
    h = qp.beta * qp.kuu

    def f(a):
        return 0.5 * a @ h @ a + qp.q @ a

    def g(a):
        return h @ a + qp.q

    best = np.inf
    rng = np.random.default_rng(0)
    for start in [np.full(n, qp.b / n), *(rng.dirichlet(np.ones(n)) * qp.b for _ in range(3))]:
        res = minimize(f, np.clip(start, 0, 1), jac=g, method="SLSQP", bounds=[(0, 1)] * n,
                       constraints=[{"type": "eq", "fun": lambda a: a.sum() - qp.b, "jac": lambda a: np.ones(n)}],
                       options={"ftol": 1e-12, "maxiter": 500})
        if abs(res.x.sum() - qp.b) < 1e-6 and res.x.min() > -1e-8 and res.x.max() < 1 + 1e-8:
            best = min(best, f(res.x))
    return best


def test_beta_zero_picks_the_smallest_margins():
    pr = problem(40, 5, 6, seed=3, c=4)
    res = bmdr.bmdr_select(Problem(**{**pr.__dict__, "params": {"bmdr_beta": 0.0}}))
    top = np.sort(pr.probs.astype(np.float64), axis=1)
    m = (top[:, -1] - top[:, -2])[pr.candidates]
    assert set(res.picks) == set(pr.candidates[np.argsort(m)[:6]])


def test_large_beta_fills_the_cluster_the_labelled_set_misses():
    """Two equal clusters, every labelled point in the first: MMD pulls the batch into the second."""
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 20].astype(np.float32)
    probs = softmax(rng.normal(size=(60, 3)))
    pr = Problem(x, np.arange(0, 10), np.arange(60), 10, probs=probs, params={"bmdr_beta": 100.0})
    res = bmdr.bmdr_select(pr)
    assert np.all(res.picks >= 30)
    assert res.report["mmd2_after"] < res.report["mmd2_before"]


@pytest.mark.parametrize("kernel_name", ["rbf", "linear"])
def test_low_rank_path_agrees_with_the_exact_kernel(kernel_name):
    """Nyström with every pool point as a landmark reproduces K: same α, same picks; the linear kernel's
    factor (the features) against its dense N×N kernel."""
    pr = problem(120, 20, 15, seed=1, c=5, d=4)
    exact = bmdr.bmdr_select(Problem(**{**pr.__dict__, "params": {"bmdr_kernel": "rbf"}}))
    if kernel_name == "rbf":
        low = bmdr.bmdr_select(Problem(**{**pr.__dict__, "params": {"bmdr_max_exact": 0, "bmdr_rank": 120}}))
        assert low.report["approximation"].startswith("Nyström")
        assert exact.report["approximation"] == "exact"
        assert set(low.picks) == set(exact.picks)
        assert low.report["relaxed_objective"] == pytest.approx(exact.report["relaxed_objective"], rel=1e-5)
    else:
        cand = pr.candidates
        d, _ = bmdr.discriminative(pr, cand)
        x = pr.features.astype(np.float64)
        k = x @ x.T
        dense = bmdr.KernelSums(k[np.ix_(cand, cand)], None, k[np.ix_(pr.labeled, cand)].sum(0),
                                k[np.ix_(cand, cand)].sum(0), float(k[np.ix_(pr.labeled, pr.labeled)].sum()), "dense")
        alpha, _ = bmdr.solve(bmdr.build_qp(d, dense, pr.labeled.size, pr.budget, 1.0))
        low = bmdr.bmdr_select(Problem(**{**pr.__dict__, "params": {"bmdr_kernel": "linear"}}))
        qp = bmdr.build_qp(d, dense, pr.labeled.size, pr.budget, 1.0)
        assert low.report["relaxed_objective"] == pytest.approx(qp.value(alpha), rel=1e-5, abs=1e-6)


def test_low_rank_of_lower_rank_is_close_on_the_exact_objective():
    pr = problem(300, 30, 20, seed=2, c=5, d=3)
    qp, _ = qp_of(pr, 1.0, bmdr.median_bandwidth(pr.features, pr.pool, pr.rng()))
    exact = bmdr.bmdr_select(pr)
    low = bmdr.bmdr_select(Problem(**{**pr.__dict__, "params": {"bmdr_max_exact": 0, "bmdr_rank": 40}}))
    pos = {int(c): i for i, c in enumerate(pr.candidates)}

    def j(picks):
        return qp.value(onehot(pr.candidates.size, tuple(pos[int(p)] for p in picks)))

    assert j(low.picks) <= j(exact.picks) + 0.01 * abs(j(exact.picks))


def test_deterministic_per_seed_and_scale_guard():
    rng = np.random.default_rng(5)
    n = 400
    emb = Embeddings(rng.normal(size=(n, 8)).astype(np.float32), np.arange(n), n,
                     probs=softmax(rng.normal(size=(n, 4))))
    lab = LabeledSet(np.arange(0, n, 8), np.zeros(n // 8, np.int32), n)
    params = {"bmdr_max_exact": 100, "bmdr_rank": 32}
    a = select_round(emb, lab, "bmdr", 25, seed=7, params=params).result
    b = select_round(emb, lab, "bmdr", 25, seed=7, params=params).result
    assert list(a.picks) == list(b.picks)
    assert a.report["approximation"].startswith("Nyström, 32 landmarks")  # 400 > --bmdr-max-exact 100


def write_embeddings(path, n=80, probs=True, seed=0):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "alcli.embeddings"
        f.attrs["version"] = 1
        f.attrs["pool_size"] = n
        f["features"] = rng.normal(size=(n, 6)).astype(np.float32)
        f["indices"] = np.arange(n)
        if probs:
            f["probs"] = softmax(rng.normal(size=(n, 3)))


def test_cli(tmp_path):
    emb, bare = tmp_path / "emb.h5", tmp_path / "bare.h5"
    write_embeddings(emb)
    write_embeddings(bare, probs=False)
    help_text = run_alcli("select", "--help", check=True).stdout.decode()
    assert "bmdr" in help_text and "--bmdr-beta" in help_text and "--bmdr-max-exact" in help_text
    outs = []
    for k in range(2):
        out = tmp_path / f"l{k}.h5"
        run_alcli("select", emb, "-b", "7", "-m", "bmdr", "--seed", "3", "--bmdr-max-exact", "10", "-o", out,
                  check=True)
        with h5py.File(out) as f:
            outs.append(list(f["last_picks"][()]))
    assert outs[0] == outs[1] and len(set(outs[0])) == 7
    assert_one_line_error(run_alcli("select", bare, "-b", "5", "-m", "bmdr", "-o", tmp_path / "x.h5"), "probs")
    assert_one_line_error(run_alcli("select", emb, "-b", "5", "-m", "bmdr", "--bmdr-beta", "-1",
                                    "-o", tmp_path / "x.h5"), "--bmdr-beta")
    assert not (tmp_path / "x.h5").exists()
