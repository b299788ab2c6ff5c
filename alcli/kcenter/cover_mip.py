"""The decision problem behind robust k-Center (Algorithm 2): can b new centers cover every point within δ,
leaving at most Ξ points uncovered? As a set cover with outliers, solved by CBC (python-mip).

Rows are the points farther than δ from the labelled centers s0; columns are the candidates within δ of
some row. The model: Σ_{j∈N_δ(i)} u_j + o_i ≥ 1 for every row, Σu ≤ b, Σo ≤ Ξ (no o when Ξ = 0),
minimise Σu, stop at the first feasible solution. Columns whose rows are a subset of another column's
are dropped first (ties: the lower index stays), which leaves the answer unchanged and makes CBC's
job much smaller. A greedy max-coverage pass and a counting bound settle many δ without a solve.

Neighbour lists are built once (FAISS range search at the largest δ that will be tested, radius
padded by the float32 error bound) and filtered per δ with exact float64 distances wherever the
float32 value is within its error bound of δ², so every decision is made on exact distances.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from alcli import signals
from alcli.kcenter import distance

PAIR_BYTES = 12  # stored per neighbour pair: int32 id, float32 distance, and the per-δ filtering


@dataclass
class Neighbours:
    """Candidates near each row, as CSR. Rows and columns are positions into the features."""

    x: np.ndarray
    rows: np.ndarray  # positions of the rows (candidates farther than the floor from s0)
    s0_sq: np.ndarray  # exact squared distance of each row to s0 (inf with no s0)
    cols: np.ndarray  # positions of all candidates (column universe); ids index into it
    indptr: np.ndarray
    ids: np.ndarray  # int32 into cols
    d2: np.ndarray  # float32 squared distances (FAISS)
    tol: np.ndarray  # per row: bound on |float32 - exact| of its pairs
    exact: np.ndarray | None = None  # float64 exact squared distances of every pair (--exact)

    @property
    def pairs(self) -> int:
        return int(self.ids.size)

    def pair_rows(self) -> np.ndarray:
        return np.repeat(np.arange(self.rows.size), np.diff(self.indptr))

    def extend(self, more: Neighbours) -> None:
        """Append `more`'s rows (same columns)."""
        self.rows = np.concatenate([self.rows, more.rows])
        self.s0_sq = np.concatenate([self.s0_sq, more.s0_sq])
        self.indptr = np.concatenate([self.indptr, more.indptr[1:] + self.indptr[-1]])
        self.ids = np.concatenate([self.ids, more.ids])
        self.d2 = np.concatenate([self.d2, more.d2])
        self.tol = np.concatenate([self.tol, more.tol])
        self.exact = None

    def fill_exact(self) -> None:
        self.exact = exact_pairs(self.x, self.rows[self.pair_rows()], self.cols[self.ids])


def exact_pairs(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact float64 squared distances |x[a[k]] - x[b[k]]|², blockwise."""
    out = np.empty(a.size, np.float64)
    step = distance.block_rows(x.shape[1])
    for start in range(0, a.size, step):
        diff = x[a[start : start + step]].astype(np.float64)
        diff -= x[b[start : start + step]]
        np.einsum("ij,ij->i", diff, diff, out=out[start : start + step])
    return out


def spans(ptr: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Concatenated index ranges ptr[w]..ptr[w+1] for w in `which` (CSR gather)."""
    lengths = ptr[which + 1] - ptr[which]
    total = int(lengths.sum())
    return np.repeat(ptr[which] - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(total)


def build_neighbours(
    x: np.ndarray, rows: np.ndarray, s0_sq: np.ndarray, cols: np.ndarray, radius: float, max_pairs: int,
    stop: Callable[[], bool] | None = None,
) -> Neighbours | None:
    """Every (row, candidate) pair within `radius` (exact l2), or None past `max_pairs` or when `stop()`."""
    d = x.shape[1]
    row_norm = np.sqrt(distance.sqnorms_rows(x, rows))
    col_max = float(np.sqrt(distance.sqnorms_rows(x, cols).max())) if cols.size else 0.0
    tol = distance.expansion_tolerance(d, row_norm, col_max, gpu=False)
    pad = float(tol.max()) if tol.size else 0.0
    found = distance.range_neighbours(x, rows, cols, (radius * radius + pad) * (1 + 1e-6) + 1e-30, max_pairs,
                                      stop=stop)
    if found is None:
        return None
    indptr, ids, d2 = found
    return Neighbours(x, rows, s0_sq, cols, indptr, ids, d2, np.asarray(tol, np.float64))


@dataclass
class Cover:
    """The set cover at one δ: rows 0..m-1 (positions `rows`), columns 0..k-1 (positions `cols`)."""

    rows: np.ndarray
    cols: np.ndarray
    row_of: np.ndarray  # per pair (sorted by row)
    col_of: np.ndarray
    dropped: int = 0  # dominated columns removed


def cover_at(nb: Neighbours, delta_sq: float) -> Cover:
    """The rows farther than δ from s0 and, per row, the candidates within δ (decided exactly)."""
    sel = np.flatnonzero(nb.s0_sq > delta_sq)
    lengths = nb.indptr[sel + 1] - nb.indptr[sel]
    idx = spans(nb.indptr, sel)
    row_of = np.repeat(np.arange(sel.size), lengths)
    if nb.exact is not None:
        keep = nb.exact[idx] <= delta_sq
    else:
        f = nb.d2[idx].astype(np.float64)
        tol = np.repeat(nb.tol[sel], lengths)
        keep = f <= delta_sq - tol
        amb = np.flatnonzero(~keep & (f <= delta_sq + tol))
        if amb.size:
            ex = exact_pairs(nb.x, nb.rows[sel[row_of[amb]]], nb.cols[nb.ids[idx[amb]]])
            keep[amb] = ex <= delta_sq
    row_of, gid = row_of[keep], nb.ids[idx[keep]]
    ucols, col_of = np.unique(gid, return_inverse=True)
    return Cover(nb.rows[sel], nb.cols[ucols], row_of, col_of.astype(np.int64))


def drop_dominated(cover: Cover, work_limit: int = 40_000_000, chunk: int = 4_000_000) -> Cover:
    """Remove every column whose rows are a subset of another column's (the larger, or on equal sets the
    lower index, stays). Counts co-occurrences (AᵀA) column block by column block; skipped when the
    expansion would exceed `work_limit` pairs. The optimum and the feasibility are unchanged."""
    m, k = cover.rows.size, cover.cols.size
    if k < 2:
        return cover
    row_len = np.bincount(cover.row_of, minlength=m)
    if int((row_len.astype(np.int64) ** 2).sum()) > work_limit:
        return cover
    row_ptr = np.r_[0, np.cumsum(row_len)]
    col_cnt = np.bincount(cover.col_of, minlength=k)
    by_col = np.argsort(cover.col_of, kind="stable")
    csc_rows = cover.row_of[by_col]
    col_ptr = np.r_[0, np.cumsum(col_cnt)]
    work_per_col = np.add.reduceat(row_len[csc_rows], col_ptr[:-1]) if csc_rows.size else np.zeros(k, np.int64)
    work_per_col[col_cnt == 0] = 0
    dominated = np.zeros(k, bool)
    rank = col_cnt.astype(np.int64) * (k + 1) + (k - np.arange(k))  # larger = stronger
    j0 = 0
    cum = np.cumsum(work_per_col)
    while j0 < k:
        base = cum[j0 - 1] if j0 else 0
        j1 = max(j0 + 1, int(np.searchsorted(cum, base + chunk, side="right")))
        p0, p1 = col_ptr[j0], col_ptr[j1]
        js = np.repeat(np.arange(j0, j1), col_cnt[j0:j1])
        rs = csc_rows[p0:p1]
        jj = np.repeat(js, row_len[rs])
        kk = cover.col_of[spans(row_ptr, rs)]
        stronger = rank[kk] > rank[jj]
        key = jj[stronger] * k + kk[stronger]
        if key.size:
            uniq, cnt = np.unique(key, return_counts=True)
            jv = uniq // k
            full = cnt == col_cnt[jv]
            dominated[jv[full]] = True
        j0 = j1
    if not dominated.any():
        return cover
    keep_col = ~dominated
    pkeep = keep_col[cover.col_of]
    remap = np.cumsum(keep_col) - 1
    return Cover(cover.rows, cover.cols[keep_col], cover.row_of[pkeep], remap[cover.col_of[pkeep]],
                 dropped=int(dominated.sum()))


def precheck(cover: Cover, budget: int, outliers: int) -> tuple[str, np.ndarray | None]:
    """('infeasible', None) when even the b largest columns cannot cover enough rows; ('feasible', cols)
    when greedy max-coverage already covers all but Ξ rows; ('unknown', None) otherwise."""
    m, k = cover.rows.size, cover.cols.size
    need = m - outliers
    if need <= 0:
        return "feasible", np.zeros(0, np.int64)
    cnt = np.bincount(cover.col_of, minlength=k)
    if k == 0 or int(np.sort(cnt)[::-1][:budget].sum()) < need:
        return "infeasible", None
    by_col = np.argsort(cover.col_of, kind="stable")
    csc_rows = cover.row_of[by_col]
    col_ptr = np.r_[0, np.cumsum(cnt)]
    row_ptr = np.r_[0, np.cumsum(np.bincount(cover.row_of, minlength=m))]
    gain = cnt.astype(np.int64)
    covered = np.zeros(m, bool)
    chosen: list[int] = []
    left = m
    while left > outliers and len(chosen) < budget:
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        chosen.append(j)
        rs = csc_rows[col_ptr[j] : col_ptr[j + 1]]
        rs = rs[~covered[rs]]
        covered[rs] = True
        left -= rs.size
        if rs.size:
            gain -= np.bincount(cover.col_of[spans(row_ptr, rs)], minlength=k)
    if left <= outliers:
        return "feasible", np.asarray(chosen, np.int64)
    return "unknown", None


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """CBC is a C library: whatever it prints must not reach stdout, which may carry an artifact."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def solve(cover: Cover, budget: int, outliers: int, seconds: float) -> tuple[str, np.ndarray | None]:
    """CBC on one thread, stopped at the first feasible cover. Returns ('feasible', column indices),
    ('infeasible', None) or ('timeout', None) when the limit came first without an answer."""
    import mip

    m, k = cover.rows.size, cover.cols.size
    with stdout_to_stderr():
        model = mip.Model(sense=mip.MINIMIZE, solver_name=mip.CBC)
        model.verbose = 0
        model.threads = 1
        u = [model.add_var(var_type=mip.BINARY) for _ in range(k)]
        o = [model.add_var(var_type=mip.BINARY) for _ in range(m)] if outliers > 0 else []
        row_ptr = np.r_[0, np.cumsum(np.bincount(cover.row_of, minlength=m))]
        cols = cover.col_of.tolist()
        for i in range(m):
            terms = [u[j] for j in cols[row_ptr[i] : row_ptr[i + 1]]]
            if o:
                terms.append(o[i])
            model.add_constr(mip.LinExpr(terms, [1.0] * len(terms), const=-1.0, sense=mip.GREATER_OR_EQUAL))
        model.add_constr(mip.LinExpr(u, [1.0] * k, const=-float(budget), sense=mip.LESS_OR_EQUAL))
        if o:
            model.add_constr(mip.LinExpr(o, [1.0] * m, const=-float(outliers), sense=mip.LESS_OR_EQUAL))
        model.objective = mip.LinExpr(u, [1.0] * k)
        with signals.keep_sigint():  # CBC swaps in its own Ctrl-C handler for each solve
            status = model.optimize(max_seconds=max(0.05, seconds), max_solutions=1)
        if status in (mip.OptimizationStatus.OPTIMAL, mip.OptimizationStatus.FEASIBLE):
            vals = np.array([v.x if v.x is not None else 0.0 for v in u])
            return "feasible", np.flatnonzero(vals > 0.5)
        if status == mip.OptimizationStatus.INFEASIBLE:
            return "infeasible", None
        return "timeout", None
