"""Benchmark: alcli's exact k-Center-Greedy against a plain numpy reference, in the same run.

Prints one JSON object: seconds and peak RSS for each, their ratio, and whether the picks are identical.
The reference is the naive method at its memory-bandwidth floor: float32, squared norms precomputed,
one matrix-vector product per step over all points, on one BLAS thread.

    .venv/bin/python bench/kcenter.py                      # n=50,000 d=512 |labelled|=5,000 b=5,000
    .venv/bin/python bench/kcenter.py --n 20000 --budget 2000 --threads 2

Each contender runs in its own subprocess (so peak RSS is its own) on features saved to a .npy file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def clustered(n: int, d: int, clusters: int, seed: int) -> np.ndarray:
    """Gaussian blobs with per-cluster spread: the shape of real CNN features, at any size."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d)).astype(np.float32)
    spread = rng.uniform(0.2, 0.6, size=clusters).astype(np.float32)
    label = rng.integers(0, clusters, size=n)
    out = np.empty((n, d), np.float32)
    step = 8192
    for start in range(0, n, step):
        lab = label[start : start + step]
        noise = rng.normal(size=(lab.size, d)).astype(np.float32)
        out[start : start + step] = centers[lab] + noise * spread[lab, None]
    return out


def outliers(n: int, d: int, clusters: int, seed: int, fraction: float = 0.005, scale: float = 3.0) -> np.ndarray:
    """Blobs of uneven size and spread, plus `fraction` of the points pushed to ~`scale`× the typical norm
    (real CNN activations have such outliers): the shape that once sent most points to an exact scan."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d)).astype(np.float32)
    spread = rng.uniform(0.05, 0.8, size=clusters).astype(np.float32)
    weights = rng.pareto(1.0, size=clusters) + 0.05  # a few huge blobs, many small ones
    label = rng.choice(clusters, size=n, p=weights / weights.sum())
    out = np.empty((n, d), np.float32)
    step = 8192
    for start in range(0, n, step):
        lab = label[start : start + step]
        noise = rng.normal(size=(lab.size, d)).astype(np.float32)
        out[start : start + step] = centers[lab] + noise * spread[lab, None]
    far = rng.choice(n, size=max(1, int(round(fraction * n))), replace=False)
    out[far] *= np.float32(scale)
    return out


def split(n: int, labeled: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed + 1).permutation(n)
    return np.sort(perm[:labeled]), np.sort(perm[labeled:])


def reference_greedy(x: np.ndarray, labeled: np.ndarray, budget: int, threads: int) -> list[int]:
    from threadpoolctl import threadpool_limits

    sq = np.einsum("ij,ij->i", x, x)
    mind = np.full(x.shape[0], np.inf, np.float32)
    step = 4096
    for start in range(0, x.shape[0], step):  # initial distances by blocked GEMM (all threads)
        blk = x[start : start + step]
        for cs in range(0, labeled.size, step):
            c = x[labeled[cs : cs + step]]
            d = sq[start : start + step, None] + sq[labeled[cs : cs + step]][None, :] - 2.0 * (blk @ c.T)
            np.minimum(mind[start : start + step], d.min(axis=1), out=mind[start : start + step])
    mind[labeled] = -np.inf
    picks = []
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(budget):
            i = int(np.argmax(mind))
            picks.append(i)
            d = sq + sq[i] - 2.0 * (x @ x[i])
            np.minimum(mind, d, out=mind)
            mind[i] = -np.inf
    return picks


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field))


def current_rss_kb() -> int:
    return _status_kb("VmRSS:")


def peak_rss_kb() -> int:
    """VmHWM: this process's own peak (ru_maxrss can carry the parent's peak across exec)."""
    return _status_kb("VmHWM:")


def child(which: str, path: str, labeled_n: int, budget: int, seed: int, threads: int) -> None:
    import faiss  # noqa: F401  (library code pages belong to the baseline, not to the working set)

    import alcli.selection.greedy as greedy

    base = current_rss_kb()
    x = np.load(path)
    labeled, candidates = split(x.shape[0], labeled_n, seed)
    t0 = time.perf_counter()
    if which == "alcli":
        res = greedy.kcenter_greedy(x, labeled, candidates, budget, blas_threads=threads)
        picks = res.picks.tolist()
        extra = {"phases": res.seconds, "points_measured": res.measured, "radius_after": res.radius_after}
    else:
        picks = reference_greedy(x, labeled, budget, threads)
        extra = {}
    seconds = time.perf_counter() - t0
    peak = peak_rss_kb()
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024, "import_rss_mb": base / 1024,
                      "picks": picks, **extra}))


def first_difference(x: np.ndarray, args: argparse.Namespace, ours: list, ref: list) -> dict | None:
    """Where the pick sequences part, which pick is the exact (float64) farthest point."""
    step = next((i for i, (a, b) in enumerate(zip(ours, ref, strict=False)) if a != b), None)
    if step is None:
        return None
    labeled, _ = split(x.shape[0], args.labeled, args.seed)
    centers = np.concatenate([labeled, np.asarray(ours[:step], np.int64)]).astype(np.int64)

    def exact_min(i: int) -> float:
        diff = x[centers].astype(np.float64) - x[i].astype(np.float64)
        return float(np.sqrt(np.einsum("ij,ij->i", diff, diff).min()))

    a, b = exact_min(ours[step]), exact_min(ref[step])
    return {"step": step, "alcli_pick_distance": a, "reference_pick_distance": b,
            "relative_gap": (a - b) / a, "alcli_is_exact": a >= b}


def run(which: str, args: argparse.Namespace, path: str) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--path", path, "--labeled", str(args.labeled),
           "--budget", str(args.budget), "--seed", str(args.seed), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--labeled", type=int, default=5_000)
    ap.add_argument("--budget", type=int, default=5_000)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", choices=["clustered", "outliers"], default="clustered",
                    help="outliers: uneven blobs, 0.5%% of the points at ~3x the typical norm")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads in the per-step loops")
    ap.add_argument("--child", choices=["alcli", "reference"])
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path, args.labeled, args.budget, args.seed, args.threads)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "features.npy")
        make = {"clustered": clustered, "outliers": outliers}[args.data]
        np.save(path, make(args.n, args.d, args.clusters, args.seed))
        ours = run("alcli", args, path)
        ref = run("reference", args, path)
        diff = first_difference(np.load(path), args, ours["picks"], ref["picks"])
    features_mb = args.n * args.d * 4 / 2**20
    result = {
        "bench": "kcenter_greedy",
        "data": args.data, "n": args.n, "d": args.d, "labeled": args.labeled, "budget": args.budget,
        "blas_threads": args.threads, "cpu_count": os.cpu_count(),
        "features_mb": round(features_mb, 1),
        "alcli": {k: v for k, v in ours.items() if k != "picks"},
        "reference": {k: v for k, v in ref.items() if k != "picks"},
        "speedup": ref["seconds"] / ours["seconds"],
        "alcli_peak_over_features": (ours["peak_rss_mb"] - ours["import_rss_mb"]) / features_mb,
        "identical_picks": ours["picks"] == ref["picks"],
        "first_difference": diff,
    }
    print(json.dumps(result, indent=None))


if __name__ == "__main__":
    main()
