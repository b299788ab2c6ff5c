"""Tables for docs/results.md from an experiment's artifacts (samples/experiment.mk layout).

    .venv/bin/python bench/experiment_tables.py runs/mnist

Prints markdown: (1) the covering radius δ before → after each round per method (mean over seeds, from the
`labeled` artifacts), (2) for kcenter-robust, a runtime table in the style of the paper's Table 1 from the
timings each artifact records (neighbour lists, greedy, MIP per CBC solve, MIP total, total), plus the
robust radius against greedy's and the certified gap.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from alcli.artifacts import read_labeled


def main(root: str) -> None:
    radius: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    robust: list[dict] = []
    for path in sorted(Path(root).glob("*/seed*/round*/labeled.h5")):
        rnd = int(path.parent.name.removeprefix("round"))
        if rnd == 0:
            continue
        lab = read_labeled(str(path))
        method = path.parent.parent.parent.name
        radius[(method, rnd)].append((float(lab.attrs["radius_before"]), float(lab.attrs["radius_after"])))
        if method == "kcenter-robust":
            robust.append(lab.report)
    methods = sorted({m for m, _ in radius})
    rounds = sorted({r for _, r in radius})
    print("Covering radius δ (l2, penultimate layer) before → after each round, mean over seeds:\n")
    print("| method | " + " | ".join(f"round {r}" for r in rounds) + " |")
    print("|---|" + "---|" * len(rounds))
    for m in methods:
        cells = []
        for r in rounds:
            vals = np.array(radius.get((m, r), [(np.nan, np.nan)]))
            cells.append(f"{np.nanmean(vals[:, 0]):.2f} → {np.nanmean(vals[:, 1]):.2f}")
        print(f"| {m} | " + " | ".join(cells) + " |")
    if robust:
        sec = [r["seconds"] for r in robust]
        solves = [it["seconds"] for r in robust for it in r["iterations"] if it.get("by") == "cbc"]
        mip_total = [sum(it["seconds"] for it in r["iterations"]) for r in robust]
        print(f"\nkcenter-robust, mean over {len(robust)} selections (seconds):\n")
        print("| neighbour lists | greedy (2-OPT) | MIP (per CBC solve) | MIP (total) | total |")
        print("|---|---|---|---|---|")
        print(f"| {np.mean([s['neighbours'] for s in sec]):.2f} | {np.mean([s['greedy'] for s in sec]):.2f} | "
              f"{np.mean(solves) if solves else 0:.2f} | {np.mean(mip_total):.2f} | "
              f"{np.mean([s['total'] for s in sec]):.2f} |")
        ratio = [r["radius_ratio"] for r in robust]
        gap = [r["certified_gap"] for r in robust if r.get("certified_gap") is not None]
        print(f"\nrobust radius / greedy radius: mean {np.mean(ratio):.3f} (min {np.min(ratio):.3f}, "
              f"max {np.max(ratio):.3f}); certified gap: mean {100 * np.mean(gap):.2f}%, "
              f"max {100 * np.max(gap):.2f}%")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/mnist")
