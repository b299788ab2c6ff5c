"""Benchmark: k-Center-Greedy on a pool on disk, in memory vs out of core vs a Dask LocalCluster.

Prints one JSON object: seconds and peak RSS (VmHWM, each contender in its own process) for
  memory      features read into RAM, single machine
  outofcore   --memory-limit (features mapped, pages released past the budget), single machine
  dask        exact distributed greedy on LocalCluster(W) (driver out of core; workers hold shards)
  two_round   the approximate two-round mode on the same cluster (radius vs the exact one)
with the picks' agreement, the distributed round trips (several certain picks each) and their overhead,
the pool size from which the cluster would pay (per-pick work ∝ n), and what chunked/compressed HDF5
storage costs and saves.

    .venv/bin/python bench/scale.py                    # n=1,000,000 d=128 b=1,000 (0.5 GB on disk)
    .venv/bin/python bench/scale.py --n 100000 --workers 2 --memory-limit 128M

Features are generated block by block (bench/kcenter.py's clustered(), a fresh set of blobs per block)
and written to an HDF5 file in a temporary folder; the generator never holds the whole pool.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kcenter import clustered

BLOCK = 65536


def write_pool(path: str, n: int, d: int, clusters: int, seed: int) -> float:
    t0 = time.perf_counter()
    with h5py.File(path, "w") as fh:
        fh.attrs["format"] = "alcli.embeddings"
        fh.attrs["version"] = 1
        fh.attrs["pool_size"] = n
        ds = fh.create_dataset("features", shape=(n, d), dtype="f4")
        for i, start in enumerate(range(0, n, BLOCK)):
            m = min(BLOCK, n - start)
            ds[start : start + m] = clustered(m, d, clusters, seed + i)
    return time.perf_counter() - t0


def child(which: str, path: str, budget: int, limit: str, workers: int) -> None:
    import dask.distributed  # noqa: F401  (libraries load before the baseline, in every run)
    import faiss  # noqa: F401

    from alcli.artifacts import LabeledSet
    from alcli.scale import cluster, distributed
    from alcli.scale.outofcore import parse_size, peak_rss, read_embeddings
    from alcli.selection.run import select_round

    base = peak_rss()
    t0 = time.perf_counter()
    memory_limit = None if which == "memory" else parse_size(limit)
    emb = read_embeddings(path, load=(), memory_limit=memory_limit)
    t_read = time.perf_counter() - t0
    extra: dict = {}
    if which in ("dask", "two_round"):
        mode = "exact" if which == "dask" else "two-round"
        ts = time.perf_counter()
        with cluster.connect(f"local:{workers}") as client:
            extra["cluster_start_s"] = time.perf_counter() - ts
            t1 = time.perf_counter()
            rnd = select_round(emb, LabeledSet.empty(emb.pool_size), "kcenter", budget,
                               runner=distributed.runner(client, mode))
            seconds = time.perf_counter() - t1
            extra["worker_peak_rss_mb"] = [v / 2**20 for v in client.run(peak_rss).values()]
    else:
        t1 = time.perf_counter()
        rnd = select_round(emb, LabeledSet.empty(emb.pool_size), "kcenter", budget)
        seconds = time.perf_counter() - t1
    report = rnd.result.report
    print(json.dumps({
        "read_s": t_read, "select_s": seconds, "peak_rss_mb": (peak_rss() - base) / 2**20,
        "radius_after": rnd.result.radius_after, "report": report, "picks": rnd.picks_rows.tolist(),
        "page_drops": getattr(emb.features, "drops", None), **extra,
    }, default=float))


def run(which: str, args: argparse.Namespace, path: str) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--path", path, "--budget", str(args.budget),
           "--memory-limit", args.memory_limit, "--workers", str(args.workers)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def storage(path: str, rows: int) -> dict:
    """Write the first `rows` rows (and a ReLU'd copy, like CNN activations) contiguous vs chunked+lzf vs
    chunked+gzip: bytes, write and full-read seconds."""
    with h5py.File(path, "r") as fh:
        x = fh["features"][:rows]
    out: dict = {}
    for name, data in (("clustered", x), ("relu", np.maximum(x - np.median(x), 0))):
        for layout, kw in (("contiguous", {}), ("chunked_lzf", {"chunks": (1024, x.shape[1]), "compression": "lzf"}),
                           ("chunked_gzip4", {"chunks": (1024, x.shape[1]), "compression": "gzip",
                                              "compression_opts": 4, "shuffle": True})):
            with tempfile.NamedTemporaryFile(suffix=".h5") as tmp:
                t0 = time.perf_counter()
                with h5py.File(tmp.name, "w") as fh:
                    fh.create_dataset("features", data=data, **kw)
                tw = time.perf_counter() - t0
                t0 = time.perf_counter()
                with h5py.File(tmp.name, "r") as fh:
                    fh["features"][()]
                tr = time.perf_counter() - t0
                out[f"{name}/{layout}"] = {"mb": os.path.getsize(tmp.name) / 2**20, "write_s": tw, "read_s": tr}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--budget", type=int, default=1_000)
    ap.add_argument("--clusters", type=int, default=20, help="blobs per generated block of 65,536 rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-limit", default="256M")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated contenders to leave out")
    ap.add_argument("--child", choices=["memory", "outofcore", "dask", "two_round"])
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path, args.budget, args.memory_limit, args.workers)
        return
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pool.h5")
        gen_s = write_pool(path, args.n, args.d, args.clusters, args.seed)
        runs = {w: run(w, args, path) for w in ("memory", "outofcore", "dask", "two_round") if w not in skip}
        store = storage(path, min(args.n, 131072))
    ref = runs.get("memory") or runs.get("outofcore")
    b = args.budget
    result: dict = {
        "bench": "scale", "n": args.n, "d": args.d, "budget": b, "workers": args.workers,
        "memory_limit": args.memory_limit, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "features_mb": round(args.n * args.d * 4 / 2**20, 1), "generate_and_write_s": gen_s,
    }
    for name, r in runs.items():
        result[name] = {k: v for k, v in r.items() if k not in ("picks", "report")}
        if name in ("memory", "outofcore"):  # where the single-machine greedy spends its time
            result[name]["phases"] = r["report"].get("seconds")
            result[name]["profile"] = r["report"].get("profile")
        if name != "two_round":
            result[name]["identical_picks"] = r["picks"] == ref["picks"]
    if "dask" in runs:
        rep = runs["dask"]["report"]
        single_pick = ref["report"]["seconds"]["greedy"] / max(b - 1, 1)
        trip = rep["round_trip_overhead_ms"] / 1000
        per_trip = max(rep["picks_per_round_trip"], 1e-9)
        w = args.workers
        result["dask"].update({
            "round_trips": rep["round_trips"], "picks_per_round_trip": per_trip,
            "round_trip_overhead_ms": 1000 * trip, "seconds_per_pick": rep["seconds_per_pick"],
            "single_machine_seconds_per_pick": single_pick,
            "overhead_ms_per_pick": 1000 * trip / per_trip,
            # per-pick work ∝ n: W workers pay once single_pick·(1-1/W) exceeds the overhead per pick
            "break_even_n_estimate": int(args.n * (trip / per_trip) / (single_pick * (1 - 1 / w))) if w > 1 else None,
        })
    if "two_round" in runs and ref:
        two = runs["two_round"]
        result["two_round"]["radius_over_exact"] = two["radius_after"] / ref["radius_after"]
        result["two_round"]["certified_over_optimal_at_most"] = two["report"].get("radius_over_optimal_at_most")
        result["two_round"]["same_picks_as_exact"] = len(set(two["picks"]) & set(ref["picks"])) / b
    result["storage"] = store
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
