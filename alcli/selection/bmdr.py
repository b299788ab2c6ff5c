"""`bmdr` (Wang & Ye, "Querying discriminative and representative samples for batch mode active
learning", KDD 2013 / TKDD 2015): the batch Q that minimises a discriminative term plus β × the MMD
between labelled ∪ Q and the whole pool D, relaxed to a QP over α ∈ [0, 1]^{n_u} with Σα = b; the b
largest α are taken (as the paper does).

Objective, for a binary α (α_j = 1: candidate j in Q), with L labelled, U candidates, N = |L| + |U|:

    J(α) = Σ_j α_j·d_j + β/2 · (|L| + b)² · MMD²(L ∪ Q, D)
         = ½ αᵀ(β K_UU)α + (d + β ℓ)ᵀα + const,
    ℓ_j = (n_u − b)/N · Σ_{i∈L} k(x_i, x_j) − (n_l + b)/N · Σ_{i∈U} k(x_i, x_j).

Discriminative term. The paper's binary model scores x_j by the worst-case squared loss over both labels,
max_y (y − f_j)² = f_j² + 2|f_j| + 1 (constant dropped): small where the decision value f_j is near 0.
Here the model is the CNN, fixed within the round (the paper alternates the QP with refitting a kernel
least-squares classifier; alcli retrains the CNN between rounds instead), and f_j is the *margin* m_j =
p_(1) − p_(2) between the two largest softmax probabilities (MC-dropout mean when present):
d_j = m_j² + 2·m_j. For two classes and f = p₊ − p₋ this is exactly the paper's term.

Kernel: RBF exp(−|x − y|² / (2σ²)) on the features, σ by the median heuristic (median pairwise distance
of up to 1,000 seeded pool points) unless --bmdr-bandwidth is given; or `linear` (x·y).
Scale: the exact N × N kernel is formed only for N ≤ --bmdr-max-exact. Beyond it the RBF kernel is
replaced by a Nyström approximation K ≈ Z Zᵀ (r = --bmdr-rank landmarks drawn uniformly from the pool,
seeded; Z = K(x, landmarks)·W^{-1/2}), and the QP is posed in low-rank form with w = Z_Uᵀα as extra
variables: P = diag(0, β·I_r), so nothing of size N² exists anywhere (memory O(N·r)). The linear kernel
always takes this form with Z = the features (exact). Solver: Clarabel (interior point, sparse LDL).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click
import numpy as np

from alcli.errors import AlcliError
from alcli.selection import common
from alcli.selection.base import Param, Problem, Result, strategy

_MEDIAN_SAMPLE = 1000
_NEAR = 1e-3  # α within this of 0 or 1 counts as integral in the report (interior-point solutions approach the bounds)
_BLOCK = 4096


@dataclass
class QP:
    """min ½ αᵀ(βK_UU)α + qᵀα, 0 ≤ α ≤ 1, Σα = b — K_UU dense (`kuu`) or as a factor Z_U (`zu`)."""

    q: np.ndarray  # (n_u,) d + β·ℓ
    beta: float
    b: int
    kuu: np.ndarray | None = None  # (n_u, n_u)
    zu: np.ndarray | None = None  # (n_u, r)

    def value(self, alpha: np.ndarray) -> float:
        """The QP objective at α (binary α: J(α) minus a constant)."""
        alpha = np.asarray(alpha, np.float64)
        quad = alpha @ self.kuu @ alpha if self.kuu is not None else float(np.sum((self.zu.T @ alpha) ** 2))
        return float(0.5 * self.beta * quad + self.q @ alpha)


@dataclass
class KernelSums:
    """What the objective needs from the kernel: K_UU (or its factor) and the sums behind ℓ and MMD²."""

    kuu: np.ndarray | None
    zu: np.ndarray | None
    s_lu: np.ndarray  # (n_u,) Σ_{i∈L} k(x_i, x_j)
    s_uu: np.ndarray  # (n_u,) Σ_{i∈U} k(x_i, x_j)
    sum_ll: float  # 1ᵀK_LL1
    approximation: str


def rbf_block(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    """exp(−γ|a_i − b_j|²) for rows a (m×d) and b (k×d), float64."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    np.maximum(d2, 0.0, out=d2)
    return np.exp(-gamma * d2)


def median_bandwidth(x: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> float:
    """σ of the median heuristic: the median distance between distinct pairs of up to 1,000 seeded rows."""
    take = np.sort(rng.choice(rows, size=min(rows.size, _MEDIAN_SAMPLE), replace=False))
    s = common.gather(x, take).astype(np.float64)
    d2 = (s * s).sum(1)[:, None] + (s * s).sum(1)[None, :] - 2.0 * (s @ s.T)
    iu = np.triu_indices(take.size, 1)
    dist = np.sqrt(np.maximum(d2[iu], 0.0))
    dist = dist[dist > 0]
    return float(np.median(dist)) if dist.size else 1.0


def exact_sums(x: np.ndarray, lab: np.ndarray, cand: np.ndarray, gamma: float) -> KernelSums:
    """The exact kernel over labelled ∪ candidates (N ≤ --bmdr-max-exact: N² floats)."""
    xl, xu = common.gather(x, lab), common.gather(x, cand)
    kuu = rbf_block(xu, xu, gamma)
    klu = rbf_block(xl, xu, gamma)
    kll = float(rbf_block(xl, xl, gamma).sum()) if lab.size else 0.0
    return KernelSums(kuu, None, klu.sum(0), kuu.sum(0), kll, "exact")


def factor_sums(zu: np.ndarray, zl_sum: np.ndarray, approximation: str) -> KernelSums:
    """Sums of a kernel K = Z Zᵀ from its factor on the candidates and the labelled rows' factor sum."""
    zu_sum = zu.sum(0)
    return KernelSums(None, zu, zu @ zl_sum, zu @ zu_sum, float(zl_sum @ zl_sum), approximation)


def nystrom_factor(x: np.ndarray, pool: np.ndarray, rank: int, gamma: float, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Landmark rows (sorted, uniform from the pool) and M with Z(rows) = K(x[rows], landmarks)·M.
    M = V Λ^{-1/2} over the eigenpairs of W = K(landmarks, landmarks) above 1e-10·λ_max."""
    land = np.sort(rng.choice(pool, size=min(rank, pool.size), replace=False))
    xm = common.gather(x, land)
    w = rbf_block(xm, xm, gamma)
    lam, vec = np.linalg.eigh(w)
    keep = lam > 1e-10 * lam.max()
    return xm, vec[:, keep] / np.sqrt(lam[keep])


def factor_rows(x: np.ndarray, rows: np.ndarray, xm: np.ndarray, m: np.ndarray, gamma: float) -> np.ndarray:
    out = np.empty((rows.size, m.shape[1]))
    for start in range(0, rows.size, _BLOCK):
        blk = common.gather(x, rows[start : start + _BLOCK])
        out[start : start + blk.shape[0]] = rbf_block(blk, xm, gamma) @ m
    return out


def linear_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return common.gather(x, rows).astype(np.float64)


def discriminative(problem: Problem, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d, margin) per candidate: d = m² + 2m, m = top-1 minus top-2 probability."""
    m = common.margin(common.predictive(problem, cand))
    return m * m + 2.0 * m, m


def build_qp(d: np.ndarray, sums: KernelSums, n_l: int, b: int, beta: float) -> QP:
    n_u = d.size
    n = n_l + n_u
    ell = (n_u - b) / n * sums.s_lu - (n_l + b) / n * sums.s_uu
    return QP(d + beta * ell, beta, b, kuu=sums.kuu, zu=sums.zu)


def mmd2(sums: KernelSums, n_l: int, alpha: np.ndarray | None) -> float | None:
    """MMD² between L ∪ {j: α_j = 1} (α binary; None: L alone) and D = L ∪ U, from the kernel sums."""
    n_u = sums.s_uu.size
    n = n_l + n_u
    a = np.zeros(n_u) if alpha is None else np.asarray(alpha, np.float64)
    size = n_l + a.sum()
    if size == 0:
        return None
    quad = a @ sums.kuu @ a if sums.kuu is not None else float(np.sum((sums.zu.T @ a) ** 2))
    s_ss = sums.sum_ll + 2.0 * (a @ sums.s_lu) + quad
    s_sd = sums.sum_ll + sums.s_lu.sum() + a @ (sums.s_lu + sums.s_uu)
    s_dd = sums.sum_ll + 2.0 * sums.s_lu.sum() + sums.s_uu.sum()
    return float(max(s_ss / size**2 - 2.0 * s_sd / (size * n) + s_dd / n**2, 0.0))


def solve(qp: QP) -> tuple[np.ndarray, dict[str, Any]]:
    """The relaxed QP by Clarabel (a primal-dual interior-point solver; sparse LDL of its KKT system):
    α (n_u,) and the solver's status. Dense form: P = triu(βK_UU). Low-rank form: variables [α; w] with
    Z_Uᵀα − w = 0 and P = diag(0, β·I_r), so its KKT system holds O(n_u·r) nonzeros."""
    import clarabel
    from scipy import sparse

    n_u = qp.q.size
    ones = sparse.csc_matrix(np.ones((1, n_u)))
    eye = sparse.identity(n_u, format="csc")
    if qp.kuu is not None:
        p = sparse.triu(sparse.csc_matrix(qp.beta * qp.kuu), format="csc")
        a = sparse.vstack([ones, -eye, eye], format="csc")
        q, r = qp.q, 0
    else:
        r = qp.zu.shape[1]
        p = sparse.block_diag([sparse.csc_matrix((n_u, n_u)), qp.beta * sparse.identity(r)], format="csc")
        a = sparse.vstack([
            sparse.hstack([ones, sparse.csc_matrix((1, r))]),
            sparse.hstack([sparse.csc_matrix(qp.zu.T), -sparse.identity(r)]),
            sparse.hstack([-eye, sparse.csc_matrix((n_u, r))]),
            sparse.hstack([eye, sparse.csc_matrix((n_u, r))]),
        ], format="csc")
        q = np.r_[qp.q, np.zeros(r)]
    rhs = np.r_[qp.b, np.zeros(r), np.zeros(n_u), np.ones(n_u)]
    cones = [clarabel.ZeroConeT(1 + r), clarabel.NonnegativeConeT(2 * n_u)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    sol = clarabel.DefaultSolver(p.tocsc(), q, a, rhs, cones, settings).solve()
    x = np.asarray(sol.x, np.float64)
    if x.size != q.size or not np.all(np.isfinite(x)):
        raise RuntimeError(f"bmdr: the QP solver returned no solution ({sol.status}; internal error)")
    alpha = np.clip(x[:n_u], 0.0, 1.0)
    info = {"status": str(sol.status), "iterations": int(sol.iterations), "relaxed_objective": qp.value(alpha)}
    return alpha, info


def bmdr_select(problem: Problem) -> Result:
    """BMDR's batch for one round (see the module docstring)."""
    t0 = time.perf_counter()
    prm = problem.params
    beta = float(prm.get("bmdr_beta", 1.0))
    kernel = str(prm.get("bmdr_kernel", "rbf"))
    max_exact = int(prm.get("bmdr_max_exact", 2000))
    rank = int(prm.get("bmdr_rank", 128))
    _check(beta, rank, max_exact, prm.get("bmdr_bandwidth"))
    x, lab, cand, b = problem.features, problem.labeled, problem.candidates, problem.budget
    n_l, n_u = lab.size, cand.size
    rng = problem.rng()
    seconds: dict[str, float] = {}
    d, margin = discriminative(problem, cand)
    bandwidth = None
    if kernel == "linear":
        sums = factor_sums(linear_rows(x, cand), _sum_rows(lambda r: linear_rows(x, r), lab, x.shape[1]),
                           "exact (linear kernel, factor = features)")
    else:
        bandwidth = prm.get("bmdr_bandwidth") or median_bandwidth(x, np.union1d(lab, cand), rng)
        gamma = 1.0 / (2.0 * float(bandwidth) ** 2)
        if n_l + n_u <= max_exact:
            sums = exact_sums(x, lab, cand, gamma)
        else:
            xm, m = nystrom_factor(x, np.union1d(lab, cand), rank, gamma, rng)
            zl_sum = _sum_rows(lambda r: factor_rows(x, r, xm, m, gamma), lab, m.shape[1])
            sums = factor_sums(factor_rows(x, cand, xm, m, gamma), zl_sum,
                               f"Nyström, {xm.shape[0]} landmarks (rank {m.shape[1]})")
    seconds["kernel"] = time.perf_counter() - t0
    qp = build_qp(d, sums, n_l, b, beta)
    t1 = time.perf_counter()
    alpha, info = solve(qp)
    seconds["qp"] = time.perf_counter() - t1
    order = common.top_b(alpha, b, rng)
    chosen = np.zeros(n_u)
    chosen[order] = 1.0
    before, after = mmd2(sums, n_l, None), mmd2(sums, n_l, chosen)
    report = {
        "beta": beta, "kernel": kernel, "bandwidth": bandwidth, "approximation": sums.approximation,
        "solver": "clarabel", **info, "binary_objective": qp.value(chosen),
        "alpha_at_one": int(np.count_nonzero(alpha >= 1 - _NEAR)),
        "alpha_fractional": int(np.count_nonzero((alpha > _NEAR) & (alpha < 1 - _NEAR))),
        "mmd2_before": before, "mmd2_after": after,
        "mean_margin_picks": float(margin[order].mean()), "mean_margin_candidates": float(margin.mean()),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
    }
    report["headline"] = (
        f"MMD² {_fmt(before)} → {_fmt(after)} · margin of picks {report['mean_margin_picks']:.3f} "
        f"(candidates {report['mean_margin_candidates']:.3f}) · {sums.approximation} · QP {info['status']} "
        f"in {info['iterations']} it · α: {report['alpha_at_one']} ≈ 1, {report['alpha_fractional']} fractional"
    )
    return Result(picks=cand[order], why=alpha[order], why_name="relaxed QP weight α", report=report)


def _check(beta: float, rank: int, max_exact: int, bandwidth: float | None) -> None:
    if not np.isfinite(beta) or beta < 0:
        raise AlcliError(f"must be a finite number ≥ 0, got {beta}", "--bmdr-beta")
    if rank < 1:
        raise AlcliError(f"must be at least 1, got {rank}", "--bmdr-rank")
    if max_exact < 0:
        raise AlcliError(f"must be ≥ 0, got {max_exact}", "--bmdr-max-exact")
    if bandwidth is not None and not (np.isfinite(bandwidth) and bandwidth > 0):
        raise AlcliError(f"must be a positive number, got {bandwidth}", "--bmdr-bandwidth")


def _sum_rows(rows_of: Any, rows: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros(width)
    for start in range(0, rows.size, _BLOCK):
        out += rows_of(rows[start : start + _BLOCK]).sum(0)
    return out


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


strategy(
    "bmdr",
    "BMDR (Wang & Ye): margin-based discriminative term + β·MMD(labelled ∪ batch, pool), relaxed QP (Clarabel).",
    needs=("probs",),
    uses=("mc_probs",),
    params=(
        Param("bmdr_beta", float, 1.0, "weight β of the MMD term (β/2·(|L|+b)²·MMD² against Σ m²+2m)."),
        Param("bmdr_kernel", click.Choice(["rbf", "linear"]), "rbf", "kernel on the features."),
        Param("bmdr_bandwidth", float, None, "RBF σ (default: median pairwise distance of 1,000 points)."),
        Param("bmdr_max_exact", int, 2000, "largest pool (labelled + candidates) given the exact N×N kernel; "
              "above it a Nyström approximation."),
        Param("bmdr_rank", int, 128, "Nyström landmarks (rank of the approximation) above --bmdr-max-exact."),
    ),
)(bmdr_select)
