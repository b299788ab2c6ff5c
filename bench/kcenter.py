"""Benchmark: alcli's exact k-Center-Greedy against a plain numpy reference, in the same run.

Prints one JSON object: seconds and peak RSS for each, their ratio, and whether the picks are identical.
The reference is the naive method at its memory-bandwidth floor: float32, squared norms precomputed,
one matrix-vector product per step over all points, on one BLAS thread. alcli's part carries its
profile: passes over the points, picks proved a pass, pairs screened (float32) and measured (float64),
and seconds in the argmax/plan, the center bounds and the folds.

    .venv/bin/python bench/kcenter.py                      # --preset paper: n=50,000 d=512 |L|=5,000 b=5,000
    .venv/bin/python bench/kcenter.py --preset small       # n=10,000 d=512 |L|=1,000 b=1,000
    .venv/bin/python bench/kcenter.py --preset million     # n=1,000,000 d=128 |L|=1,000 b=1,000
    .venv/bin/python bench/kcenter.py --preset outliers    # the paper's size on uneven blobs + 0.5% big norms
    .venv/bin/python bench/kcenter.py --preset features --features emb.h5   # real features (an embeddings file)
    .venv/bin/python bench/kcenter.py --preset small --peers   # + fpsample's vanilla FPS seeded with |L|
    .venv/bin/python bench/kcenter.py --start auto,faiss      # the start (nearest labelled center) both ways

--start lists how alcli's start finds each point's nearest labelled center (auto: the ball-pruned grouped
search where it pays, grouped: always, faiss: FAISS' full product); the first is the main run, every other
one runs alcli again and is reported under "starts" (its phases, start counters and whether its picks are
the main run's).

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
    return _blobs(centers, spread, label, rng)


def outliers(n: int, d: int, clusters: int, seed: int, fraction: float = 0.005, scale: float = 3.0) -> np.ndarray:
    """Blobs of uneven size and spread, plus `fraction` of the points pushed to ~`scale`× the typical norm
    (real CNN activations have such outliers): the shape that once sent most points to an exact scan."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d)).astype(np.float32)
    spread = rng.uniform(0.05, 0.8, size=clusters).astype(np.float32)
    weights = rng.pareto(1.0, size=clusters) + 0.05  # a few huge blobs, many small ones
    label = rng.choice(clusters, size=n, p=weights / weights.sum())
    out = _blobs(centers, spread, label, rng)
    far = rng.choice(n, size=max(1, int(round(fraction * n))), replace=False)
    out[far] *= np.float32(scale)
    return out


def _blobs(centers: np.ndarray, spread: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """centers[label] plus Gaussian noise of each cluster's spread, drawn in blocks (no float64 n×d)."""
    out = np.empty((label.size, centers.shape[1]), np.float32)
    step = 8192
    for start in range(0, label.size, step):
        lab = label[start : start + step]
        noise = rng.normal(size=(lab.size, centers.shape[1])).astype(np.float32)
        out[start : start + step] = centers[lab] + noise * spread[lab, None]
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


PRESETS = {
    "paper": {"n": 50_000, "d": 512, "labeled": 5_000, "budget": 5_000, "data": "clustered"},
    "small": {"n": 10_000, "d": 512, "labeled": 1_000, "budget": 1_000, "data": "clustered"},
    "million": {"n": 1_000_000, "d": 128, "labeled": 1_000, "budget": 1_000, "data": "clustered"},
    "outliers": {"n": 50_000, "d": 512, "labeled": 5_000, "budget": 5_000, "data": "outliers"},
    "features": {"labeled": 1_000, "budget": 1_000, "data": "file"},
}


def load_features(path: str) -> np.ndarray:
    """The `features` matrix of an HDF5 file (an alcli embeddings artifact) or a .npy file, as float32."""
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32)
    import h5py

    with h5py.File(path, "r") as fh:
        return np.asarray(fh["features"], np.float32)


def peers_fps(x: np.ndarray, labeled: np.ndarray, budget: int) -> list[int]:
    """fpsample's vanilla FPS (compiled, float32) seeded with the labelled set: its new picks, in order."""
    import fpsample

    out = fpsample.fps_sampling(x, labeled.size + budget, start_idx=labeled.astype(int).tolist())
    seed = set(labeled.tolist())
    return [int(i) for i in out if int(i) not in seed][:budget]


def child(which: str, path: str, labeled_n: int, budget: int, seed: int, threads: int, start: str = "auto") -> None:
    import faiss  # noqa: F401  (library code pages belong to the baseline, not to the working set)

    import alcli.kcenter.greedy as greedy

    base = current_rss_kb()
    x = np.load(path)
    labeled, candidates = split(x.shape[0], labeled_n, seed)
    t0 = time.perf_counter()
    if which == "alcli":
        res = greedy.kcenter_greedy(x, labeled, candidates, budget, blas_threads=threads, _start=start)
        picks = res.picks.tolist()
        extra = {"phases": res.seconds, "pairs_measured": res.measured, "radius_after": res.radius_after,
                 "profile": res.profile}
    elif which == "peers":
        picks = peers_fps(x, labeled, budget)
        extra = {"tool": "fpsample.fps_sampling (vanilla FPS, float32), seeded with the labelled set"}
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


def run(which: str, args: argparse.Namespace, path: str, start: str = "auto") -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--path", path, "--labeled", str(args.labeled),
           "--budget", str(args.budget), "--seed", str(args.seed), "--threads", str(args.threads),
           "--start", start]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="sizes and data (flags override)")
    ap.add_argument("--n", type=int)
    ap.add_argument("--d", type=int)
    ap.add_argument("--labeled", type=int)
    ap.add_argument("--budget", type=int)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", choices=["clustered", "outliers", "file"],
                    help="outliers: uneven blobs, 0.5%% of the points at ~3x the typical norm; file: --features")
    ap.add_argument("--features", help="HDF5 file with a `features` dataset (alcli embed's output) or .npy")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads in the per-step loops")
    ap.add_argument("--peers", action="store_true", help="also run fpsample's vanilla FPS (the dev extra)")
    ap.add_argument("--no-reference", action="store_true", help="skip the numpy reference")
    ap.add_argument("--start", default="auto",
                    help="comma-separated start methods (auto, grouped, faiss): the first is the main run")
    ap.add_argument("--child", choices=["alcli", "reference", "peers"])
    ap.add_argument("--path")
    args = ap.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.child:
        child(args.child, args.path, args.labeled, args.budget, args.seed, args.threads, args.start)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "features.npy")
        if args.data == "file":
            if not args.features:
                ap.error("--data file (--preset features) needs --features PATH")
            x = load_features(args.features)
            args.n, args.d = x.shape
        else:
            x = {"clustered": clustered, "outliers": outliers}[args.data](args.n, args.d, args.clusters, args.seed)
        np.save(path, x)
        del x
        starts = args.start.split(",")
        if not set(starts) <= {"auto", "grouped", "faiss"}:
            ap.error(f"--start: auto, grouped or faiss, got {args.start}")
        ours = run("alcli", args, path, starts[0])
        others = {start: run("alcli", args, path, start) for start in starts[1:]}
        ref = None if args.no_reference else run("reference", args, path)
        peers = run("peers", args, path) if args.peers else None
        x = np.load(path, mmap_mode="r")
        diff = first_difference(x, args, ours["picks"], ref["picks"]) if ref else None
        peers_diff = first_difference(x, args, ours["picks"], peers["picks"]) if peers else None
        del x
    features_mb = args.n * args.d * 4 / 2**20
    result = {
        "bench": "kcenter_greedy", "preset": args.preset,
        "data": args.features if args.data == "file" else args.data,
        "n": args.n, "d": args.d, "labeled": args.labeled, "budget": args.budget,
        "blas_threads": args.threads, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "features_mb": round(features_mb, 1),
        "alcli": {k: v for k, v in ours.items() if k != "picks"},
        "alcli_peak_over_features": (ours["peak_rss_mb"] - ours["import_rss_mb"]) / features_mb,
    }
    if others:
        result["starts"] = {start: {"seconds": o["seconds"], "phases": o["phases"],
                                    "main_start_speedup": o["phases"]["initial_distances"]
                                    / ours["phases"]["initial_distances"],
                                    "same_picks": o["picks"] == ours["picks"],
                                    "profile": {k: v for k, v in o["profile"].items() if k.startswith("start")}}
                            for start, o in others.items()}
    if ref:
        result.update({"reference": {k: v for k, v in ref.items() if k != "picks"},
                       "speedup": ref["seconds"] / ours["seconds"],
                       "identical_picks": ours["picks"] == ref["picks"], "first_difference": diff})
    if peers:
        result["peers"] = {k: v for k, v in peers.items() if k != "picks"}
        result["peers"]["speedup"] = peers["seconds"] / ours["seconds"]
        result["peers"]["same_picks"] = ours["picks"] == peers["picks"]
        result["peers"]["first_difference"] = peers_diff
    print(json.dumps(result, indent=None))


if __name__ == "__main__":
    main()
