"""Benchmark: kcenter-robust (Algorithm 2 on CBC) against the greedy start, per phase, in one process per case.

Prints one JSON object: for each case, seconds per phase (greedy, neighbour lists, per radius tested: the
cover build and the pre-check or CBC solve, top-up), final robust radius over greedy's, the certified gap,
how the search stopped, and peak RSS. Data: the clustered generator of bench/kcenter.py, d=512.

    .venv/bin/python bench/robust.py                         # every case below (minutes)
    .venv/bin/python bench/robust.py --cases paper,hard      # the paper's setting and the hard case
    .venv/bin/python bench/robust.py --sizes 10000 --cases sizes

Cases: sizes (n in --sizes, |s0| = b = n/10), paper (n=50k, |s0|=10k, b=5k), hard (n=--hard-n, |s0| = n/100,
b = n/10). Ξ defaults to 1e-4·n as in the paper. The paper reports 360 s for its setting (Gurobi, 6-core i7).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kcenter import clustered, current_rss_kb, peak_rss_kb, split  # the shared synthetic data


def child(n: int, labeled_n: int, budget: int, d: int, clusters: int, seed: int, params: dict) -> None:
    from alcli.selection.base import Problem
    from alcli.selection.robust import kcenter_robust

    x = clustered(n, d, clusters, seed)
    labeled, _ = split(n, labeled_n, seed)
    base = current_rss_kb()
    prob = Problem(features=x, labeled=labeled, pool=np.arange(n), budget=budget, params=params)
    t0 = time.perf_counter()
    res = kcenter_robust(prob)
    total = time.perf_counter() - t0
    rep = res.report
    its = rep["iterations"]
    print(json.dumps({
        "n": n, "labeled": labeled_n, "budget": budget, "d": d, "outliers": rep["outliers_allowed"],
        "seconds_total": round(total, 3),
        "seconds": rep["seconds"],
        "seconds_build": round(sum(it["build_seconds"] for it in its), 3),
        "seconds_solves": [round(it["seconds"] - it["build_seconds"], 3) for it in its],
        "tested": [[round(it["delta"], 4), it["status"], it["by"]] for it in its],
        "delta_greedy": rep["delta_greedy"], "greedy_robust_radius": rep["greedy_robust_radius"],
        "robust_radius": rep["robust_radius"], "radius_ratio": rep["radius_ratio"],
        "full_radius_after": res.radius_after,
        "lower_bound": rep["lower_bound"], "certified_gap": rep["certified_gap"],
        "stopped_by": rep["stopped_by"], "cbc_solves": rep["cbc_solves"], "neighbour_pairs": rep["neighbour_pairs"],
        "mip_centers": rep["mip_centers"], "outliers_used": rep["outliers_used"],
        "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
        "data_rss_mb": round(base / 1024, 1),
    }))


def run_case(n: int, labeled: int, budget: int, args: argparse.Namespace) -> dict:
    params = {"gap": args.gap, "time_limit": args.time_limit}
    if args.outliers is not None:
        params["outliers"] = args.outliers
    cmd = [sys.executable, __file__, "--child", json.dumps([n, labeled, budget, args.d, args.clusters, args.seed,
                                                            params])]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="sizes,paper,hard", help="comma list of sizes, paper, hard")
    ap.add_argument("--sizes", default="10000,50000,100000", help="n for the `sizes` case (|s0| = b = n/10)")
    ap.add_argument("--hard-n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gap", type=float, default=0.01)
    ap.add_argument("--outliers", type=int, default=None, help="Ξ (default 1e-4·n)")
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        child(*json.loads(args.child))
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    result: dict = {"bench": "kcenter_robust", "cpu_count": os.cpu_count(), "gap": args.gap, "cases": {}}
    for case in cases:
        if case == "sizes":
            for n in (int(v) for v in args.sizes.split(",")):
                result["cases"][f"n{n}"] = run_case(n, n // 10, n // 10, args)
        elif case == "paper":
            result["cases"]["paper"] = run_case(50_000, 10_000, 5_000, args)
            result["paper_reported_seconds"] = 360.0
        elif case == "hard":
            result["cases"]["hard"] = run_case(args.hard_n, args.hard_n // 100, args.hard_n // 10, args)
        else:
            raise SystemExit(f"unknown case {case!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
