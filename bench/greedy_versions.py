"""One k-Center-Greedy run on a bench preset's data, for timing two versions of alcli against each other.

Prints one JSON object (seconds per phase, the profile, float64 pairs measured, a sha256 of the picks and
of their scores' bits) and optionally saves the picks. Whatever `alcli` is on PYTHONPATH runs, so the same
script times an older commit (a `git worktree`) against this one, paired: run them in turn, old new old
new ..., and take the median of the pair ratios (pairing keeps a ratio meaningful on a busy box, where
bare seconds drift; `-P` keeps the checkout's own alcli off the path):

    git worktree add ../alcli-old <commit>
    for i in 1 2 3; do
      PYTHONPATH=../alcli-old .venv/bin/python -P bench/greedy_versions.py scale
      PYTHONPATH=. .venv/bin/python -P bench/greedy_versions.py scale
    done

Cases: paper and outliers (bench/kcenter.py's presets), million (its preset), scale (bench/scale.py's pool
of 10⁶ × 128, blobs per 65,536-row block, no labelled set, b = 1,000). Data generation is in the process
(both versions pay it). Equal `picks_sha256` across versions means the same picks and bitwise-equal scores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kcenter import clustered, outliers, split


def data(case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if case == "scale":
        n = 1_000_000
        x = np.concatenate([clustered(min(65536, n - s), 128, 20, i) for i, s in enumerate(range(0, n, 65536))])
        return x, np.zeros(0, np.int64), np.arange(n), 1000
    if case == "million":
        x = clustered(1_000_000, 128, 100, 0)
        lab, cand = split(1_000_000, 1000, 0)
        return x, lab, cand, 1000
    x = (clustered if case == "paper" else outliers)(50_000, 512, 100, 0)
    lab, cand = split(50_000, 5000, 0)
    return x, lab, cand, 5000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=["paper", "outliers", "million", "scale"])
    ap.add_argument("--save", help="write the picks and the scores' bits here (.npy)")
    args = ap.parse_args()
    import alcli
    from alcli.kcenter.greedy import kcenter_greedy

    x, lab, cand, budget = data(args.case)
    t0 = time.perf_counter()
    res = kcenter_greedy(x, lab, cand, budget)
    seconds = time.perf_counter() - t0
    bits = np.concatenate([res.picks, res.scores.view(np.int64)])
    if args.save:
        np.save(args.save, bits)
    print(json.dumps({"case": args.case, "alcli": os.path.dirname(alcli.__file__), "seconds": round(seconds, 3),
                      "phases": res.seconds, "profile": res.profile, "pairs_measured": res.measured,
                      "picks_sha256": hashlib.sha256(bits.tobytes()).hexdigest()}))


if __name__ == "__main__":
    main()
