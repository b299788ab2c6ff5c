"""The 2-D map of a pool (the paper's Figure 5): which points to draw, their coordinates, the panels.

Points: every row of the embeddings, except that beyond `max_points` only the rows labelled in none of
the panels' artifacts (the unpicked rest) are subsampled, uniformly and seeded; labelled points and
picks are always kept. Coordinates: PCA (numpy, exact) or t-SNE (openTSNE on the data reduced to 50 PCA
dimensions, exact neighbours from FAISS, PCA initialisation, seeded; FFT-accelerated gradients from
2,000 points, Barnes-Hut below). Every panel shares the same coordinates.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from alcli.artifacts.labeled import LabeledSet

TSNE_DIMS = 50  # PCA dimensions t-SNE starts from (as openTSNE's and the t-SNE authors' advice)
FFT_FROM = 2_000  # FFT-interpolated gradients from this many points; Barnes-Hut below (cheaper there)
# t-SNE units per FFT interpolation interval (openTSNE's default 1): the FFT grid, not the points, costs most
# below ~20,000 points (span ~100: 78 ms CPU an iteration at 1, 14 ms at 3, on the MNIST sample's 4,000)
FFT_INTERVAL = 2
_BLOCK = 8192


@dataclass
class Panel:
    """One labelled artifact drawn over the shared points: positions into the drawn points."""

    name: str
    method: str
    round: int
    earlier: np.ndarray  # labelled before the last round
    picks: np.ndarray  # the last round's picks
    radius_before: float | None = None
    radius_after: float | None = None

    @property
    def title(self) -> str:
        head = f"{self.method} · round {self.round}" if self.method else os.path.basename(self.name)
        text = f"{head}\n{self.earlier.size:,} labelled + {self.picks.size:,} picked"
        if self.radius_after is not None:
            before = f"{self.radius_before:.3g} → " if self.radius_before is not None else ""
            text += f" · radius {before}{self.radius_after:.3g}"
        return text


def groups(lab: LabeledSet) -> tuple[np.ndarray, np.ndarray]:
    """(earlier rows, last round's picks) of a labelled set, as data-set rows: the picks are
    `last_picks` (or, when absent, the rows of the highest round)."""
    picks = np.unique(lab.last_picks) if lab.last_picks.size else lab.indices[lab.rounds == lab.next_round - 1]
    earlier = np.setdiff1d(lab.indices, picks, assume_unique=True)
    return earlier, picks


def _finite(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def panel_of(lab: LabeledSet, rows: np.ndarray) -> Panel:
    """The panel of one labelled set over the drawn points, whose data-set rows are `rows` (sorted)."""
    earlier, picks = groups(lab)
    rnd = int(lab.rounds.max()) if lab.rounds.size else 0
    return Panel(lab.name, str(lab.attrs.get("method", "") or ""), rnd, np.searchsorted(rows, earlier),
                 np.searchsorted(rows, picks), _finite(lab.attrs.get("radius_before")),
                 _finite(lab.attrs.get("radius_after")))


def choose_points(n: int, keep: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """Positions (sorted) of the points to draw among n: all of `keep` (labelled or picked somewhere),
    plus the rest — all of it, or a seeded uniform sample so the total is max(max_points, |keep|)."""
    keep = np.unique(keep)
    if n <= max_points:
        return np.arange(n)
    rest = np.setdiff1d(np.arange(n), keep, assume_unique=True)
    room = max(0, max_points - keep.size)
    sample = np.random.default_rng(seed).choice(rest, size=min(room, rest.size), replace=False)
    return np.union1d(keep, sample)


def pca(x: np.ndarray, k: int) -> np.ndarray:
    """The first k principal components of the rows of x (float64 m×k): exact, from the d×d covariance
    (O(m·d²) time, O(d²) extra memory); signs fixed so each axis' largest loading is positive."""
    m, d = x.shape
    mean = np.zeros(d)
    for start in range(0, m, _BLOCK):
        mean += x[start : start + _BLOCK].astype(np.float64).sum(0)
    mean /= max(m, 1)
    cov = np.zeros((d, d))
    for start in range(0, m, _BLOCK):
        blk = x[start : start + _BLOCK].astype(np.float64) - mean
        cov += blk.T @ blk
    lam, vec = np.linalg.eigh(cov)
    vec = vec[:, ::-1][:, : min(k, d)]
    vec *= np.where(vec[np.abs(vec).argmax(0), np.arange(vec.shape[1])] < 0, -1.0, 1.0)
    out = np.empty((m, vec.shape[1]))
    for start in range(0, m, _BLOCK):
        out[start : start + _BLOCK] = (x[start : start + _BLOCK].astype(np.float64) - mean) @ vec
    if vec.shape[1] < k:  # fewer feature dimensions than asked: pad with zeros
        out = np.hstack([out, np.zeros((m, k - vec.shape[1]))])
    return out


def tsne(x: np.ndarray, seed: int, perplexity: float = 30.0, say: Callable[[str], None] | None = None,
         threads: int | None = None) -> np.ndarray:
    """2-D t-SNE of the rows of x: PCA to 50 dimensions, exact kNN (FAISS, 3·perplexity neighbours),
    perplexity affinities, PCA initialisation, 250 early-exaggeration + 500 iterations of openTSNE's
    gradient descent (seeded): FFT-accelerated from 2,000 points, Barnes-Hut below."""
    import faiss
    from openTSNE import TSNE, affinity, initialization
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    say = say or (lambda _msg: None)
    m = x.shape[0]
    perplexity = float(min(perplexity, max(1.0, (m - 1) / 3.0)))
    t0 = time.perf_counter()
    low = pca(x, min(TSNE_DIMS, x.shape[1])).astype(np.float32)
    k = int(min(m - 1, max(1, round(3 * perplexity))))
    index = faiss.IndexFlatL2(low.shape[1])
    index.add(low)
    d2, ids = index.search(low, k + 1)
    ids, dist = _drop_self(ids, d2)
    say(f"t-SNE: {m:,} points, PCA to {low.shape[1]} dims and {k} nearest neighbours in "
        f"{time.perf_counter() - t0:.1f} s")
    threads = threads or os.cpu_count() or 1
    aff = affinity.PerplexityBasedNN(perplexity=perplexity, knn_index=PrecomputedNeighbors(ids, dist),
                                     n_jobs=threads, random_state=seed)
    init = initialization.rescale(low[:, :2].astype(np.float64).copy()) if low.shape[1] >= 2 else None
    total = {"iter": 0}

    def progress(iteration: int, error: float, embedding: object) -> bool:
        total["iter"] += 50
        if total["iter"] % 150 == 0:
            say(f"t-SNE: iteration {total['iter']}/750 · KL {error:.3f} · {time.perf_counter() - t0:.1f} s")
        return False

    model = TSNE(n_components=2, perplexity=perplexity, n_jobs=threads, random_state=seed,
                 negative_gradient_method="fft" if m >= FFT_FROM else "bh", ints_in_interval=FFT_INTERVAL,
                 callbacks=progress, callbacks_every_iters=50, verbose=False)
    emb = model.fit(affinities=aff, initialization=init if init is not None else "random")
    return np.asarray(emb, np.float64)


def _drop_self(ids: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k neighbours without itself (its own column, else the last: duplicates)."""
    m, k1 = ids.shape
    own = ids == np.arange(m)[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k1 - 1)
    keep = np.ones_like(own)
    keep[np.arange(m), drop] = False
    ids = ids[keep].reshape(m, k1 - 1).astype(np.int64)
    dist = np.sqrt(np.maximum(d2[keep].reshape(m, k1 - 1).astype(np.float64), 0.0))
    return ids, dist


def project(x: np.ndarray, method: str, seed: int, say: Callable[[str], None] | None = None) -> np.ndarray:
    """2-D coordinates (float64 m×2) of the rows of x by `method` ("tsne" or "pca")."""
    if method == "pca":
        return pca(x, 2)
    if method == "tsne":
        return tsne(x, seed, say=say)
    raise ValueError(f"unknown projection {method!r}")
