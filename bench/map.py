"""Benchmark: `alcli map` end to end (read, project, draw) on synthetic clustered features.

Prints one JSON object; `cpu_seconds` (all threads) beside wall `seconds` shows contention on a shared
machine. The reference measured in the same run is `--projection pca` on the same
inputs (reading, PCA, drawing): `tsne_over_pca` is what the t-SNE itself costs. Each configuration runs
the installed `alcli` in a subprocess; `peak_rss_mb` is its VmHWM.

    .venv/bin/python bench/map.py                      # n=50,000 d=512: default --max-points 20,000 and 50,000
    .venv/bin/python bench/map.py --n 10000 --d 128
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


def make(tmp: str, args: argparse.Namespace) -> None:
    x = clustered(args.n, args.d, args.clusters, args.seed)
    with h5py.File(os.path.join(tmp, "emb.h5"), "w") as f:
        f.attrs["format"] = "alcli.embeddings"
        f.attrs["version"] = 1
        f.attrs["pool_size"] = args.n
        f["features"] = x
        f["indices"] = np.arange(args.n)
    exe = os.path.join(os.path.dirname(sys.executable), "alcli")
    subprocess.run([exe, "-q", "select", os.path.join(tmp, "emb.h5"), "-b", str(args.labeled), "-m", "random",
                    "--seed", str(args.seed), "-o", os.path.join(tmp, "l0.h5")], check=True)
    subprocess.run([exe, "-q", "select", os.path.join(tmp, "emb.h5"), "--labeled", os.path.join(tmp, "l0.h5"),
                    "-b", str(args.budget), "-m", "kcenter", "-o", os.path.join(tmp, "l1.h5")], check=True)


def timed(tmp: str, projection: str, max_points: int) -> dict:
    exe = os.path.join(os.path.dirname(sys.executable), "alcli")
    out = os.path.join(tmp, f"map-{projection}-{max_points}.png")
    cmd = [exe, "map", os.path.join(tmp, "emb.h5"), "--labeled", os.path.join(tmp, "l1.h5"), "-o", out,
           "--projection", projection, "--max-points", str(max_points)]
    wrapper = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "u = resource.getrusage(resource.RUSAGE_CHILDREN); print(p.returncode); print(u.ru_maxrss); "
               "print(u.ru_utime + u.ru_stime); "
               "print(p.stderr[-400:])")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    lines = proc.stdout.splitlines()
    if not lines or lines[0] != "0":
        return {"error": proc.stdout[-400:] + proc.stderr[-400:]}
    return {"seconds": round(seconds, 2), "cpu_seconds": round(float(lines[2]), 2),
            "peak_rss_mb": round(int(lines[1]) / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--labeled", type=int, default=5_000)
    ap.add_argument("--budget", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-points", default="20000,50000", help="comma-separated --max-points values for t-SNE")
    args = ap.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        make(tmp, args)
        results["pca"] = {**timed(tmp, "pca", args.n), "points": args.n}
        for mp in (int(v) for v in args.max_points.split(",")):
            res = timed(tmp, "tsne", mp)
            res["points"] = min(mp, args.n)
            if "seconds" in res and "seconds" in results["pca"]:
                res["tsne_over_pca"] = round(res["seconds"] - results["pca"]["seconds"], 2)
            results[f"tsne_max_points_{mp}"] = res
    print(json.dumps({"bench": "map", "n": args.n, "d": args.d, "labeled": args.labeled, "budget": args.budget,
                      "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "runs": results}))


if __name__ == "__main__":
    main()
