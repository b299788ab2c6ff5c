"""Benchmark: seconds and peak RSS of every `alcli select` method on one synthetic pool.

Prints one JSON object; `cpu_seconds` (all threads) beside wall `seconds` shows contention on a shared
machine. Each method runs in its own subprocess (so its peak RSS is its own) through
`select_round`, the code path of `alcli select` minus the HDF5 reading and writing, on clustered
features (bench/kcenter.py's generator), random softmax `probs`, T MC-dropout passes and labels.
`random` is the reference measured in the same run: `seconds_over_random` and `peak_over_random_mb`
are what a method costs beyond the shared plumbing.

    .venv/bin/python bench/strategies.py                       # n=50,000 d=512 C=10 T=10 b=5,000
    .venv/bin/python bench/strategies.py --n 10000 --budget 1000 --methods entropy,badge

probcover runs with --param probcover_max_pairs=30000000 unless another value is given: on this data the
paper's purity heuristic picks a δ whose graph holds ~25M pairs at n=50,000, above the 20M default bound.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kcenter import clustered, current_rss_kb, peak_rss_kb, split

DEFAULT = ("random,entropy,margin,least-confidence,bald,variation-ratios,oracle-uncertainty,kmedian,typiclust,"
           "badge,probcover,kcenter-uncertain,bmdr,kcenter")


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z.astype(np.float32)


def make(tmp: str, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    x = clustered(args.n, args.d, args.clusters, args.seed)
    np.save(os.path.join(tmp, "features.npy"), x)
    np.save(os.path.join(tmp, "probs.npy"), softmax(3 * rng.normal(size=(args.n, args.classes))))
    np.save(os.path.join(tmp, "mc_probs.npy"), softmax(3 * rng.normal(size=(args.mc, args.n, args.classes))))
    np.save(os.path.join(tmp, "labels.npy"), rng.integers(0, args.classes, args.n))


def child(method: str, tmp: str, args: argparse.Namespace) -> None:
    from alcli.artifacts import Embeddings, LabeledSet
    from alcli.selection import REGISTRY
    from alcli.selection.run import select_round

    base = current_rss_kb()
    strat = REGISTRY[method]
    x = np.load(os.path.join(tmp, "features.npy"))
    n = x.shape[0]
    emb = Embeddings(x, np.arange(n), n)
    for key in strat.loads:
        if key != "labels" and key != "grad_features":
            setattr(emb, key, np.load(os.path.join(tmp, f"{key}.npy")))
    labels = np.load(os.path.join(tmp, "labels.npy")) if "labels" in strat.needs else None
    labeled, _ = split(n, args.labeled, args.seed)
    lab = LabeledSet(labeled, np.zeros(labeled.size, np.int32), n)
    loaded = current_rss_kb()
    t0, c0 = time.perf_counter(), time.process_time()
    params = {}
    for item in args.param or []:
        key, _, value = item.partition("=")
        own = {p.name: p for p in strat.params}
        if key in own:
            params[key] = own[key].type(value)
    rnd = select_round(emb, lab, method, args.budget, seed=args.seed, labels=labels, params=params)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss_kb()
    report = {k: v for k, v in rnd.result.report.items() if isinstance(v, int | float | str)}
    print(json.dumps({"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "peak_rss_mb": round(peak / 1024, 1),
                      "import_rss_mb": round(base / 1024, 1), "inputs_rss_mb": round(loaded / 1024, 1),
                      "radius_after": rnd.result.radius_after, "report": report}))


def run(method: str, tmp: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--dir", tmp, "--n", str(args.n), "--d", str(args.d),
           "--labeled", str(args.labeled), "--budget", str(args.budget), "--seed", str(args.seed)]
    cmd += [f"--param={item}" for item in args.param or []]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--mc", type=int, default=10, help="MC-dropout passes T")
    ap.add_argument("--labeled", type=int, default=5_000)
    ap.add_argument("--budget", type=int, default=5_000)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=DEFAULT, help="comma-separated; `random` is always run first")
    ap.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="a strategy option, e.g. probcover_max_pairs=60000000 (repeatable)")
    ap.add_argument("--child")
    ap.add_argument("--dir")
    args = ap.parse_args()
    if not any(p.startswith("probcover_max_pairs=") for p in args.param or []):
        args.param = [*(args.param or []), "probcover_max_pairs=30000000"]
    if args.child:
        child(args.child, args.dir, args)
        return
    methods = ["random"] + [m for m in args.methods.split(",") if m and m != "random"]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        make(tmp, args)
        for method in methods:
            results[method] = run(method, tmp, args)
    ref = results["random"]
    for res in results.values():
        if "seconds" in res:
            res["seconds_over_random"] = round(res["seconds"] - ref["seconds"], 3)
            res["peak_over_random_mb"] = round(res["peak_rss_mb"] - ref["peak_rss_mb"], 1)
    print(json.dumps({
        "bench": "strategies", "n": args.n, "d": args.d, "classes": args.classes, "mc_passes": args.mc,
        "labeled": args.labeled, "budget": args.budget, "cpu_count": os.cpu_count(),
        "features_mb": round(args.n * args.d * 4 / 2**20, 1), "methods": results,
        "slowest": max((m for m in results if "seconds" in results[m]), key=lambda m: results[m]["seconds"]),
    }))


if __name__ == "__main__":
    main()
