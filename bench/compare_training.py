"""Does a method's gain over random depend on how the models are trained? Two experiments with the same
schedule and seeds (samples/experiment.mk layouts), e.g. fully supervised and weakly supervised (SEMI=fixmatch):

    .venv/bin/python bench/compare_training.py runs/mnist runs/mnist-fixmatch

Prints markdown: (1) per labelled count, the second experiment's accuracy minus the first's for the
baseline (random): what the training change alone buys, paired by seed; (2) per method and labelled count,
the method's gain over the baseline in each experiment and the difference of the two gains, each paired by
seed (both experiments split the test set and draw the initial pools from the same seeds), with 95%
Student-t intervals over the seeds both experiments ran. Accuracy in points.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from alcli.artifacts import read_report
from alcli.report.curves import run_of, t975

Table = dict[tuple[str, int], dict[int, float]]  # (method, labelled count) -> {seed: accuracy %}


def load(root: str) -> Table:
    acc: Table = defaultdict(dict)
    for path in sorted(Path(root).glob("*/seed*/round*/report.h5")):
        run = run_of(str(path), read_report(str(path)))
        acc[(run.method, run.labeled_count)][run.seed] = 100.0 * run.accuracy
    return acc


def paired(values: dict[int, float]) -> str:
    """mean [95% CI] of per-seed values (n = seeds)."""
    v = np.array(list(values.values()))
    if v.size == 0:
        return "—"
    if v.size == 1:
        return f"{v[0]:+.2f} (1 seed)"
    half = t975(v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return f"{v.mean():+.2f} [{v.mean() - half:+.2f}, {v.mean() + half:+.2f}] (n={v.size})"


def gains(acc: Table, method: str, baseline: str, count: int) -> dict[int, float]:
    mine, base = acc.get((method, count), {}), acc.get((baseline, count), {})
    return {s: mine[s] - base[s] for s in sorted(set(mine) & set(base))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first", help="experiment folder, e.g. runs/mnist (fully supervised)")
    ap.add_argument("second", help="experiment folder, e.g. runs/mnist-fixmatch (weakly supervised)")
    ap.add_argument("--baseline", default="random")
    ap.add_argument("--methods", default="", help="comma-separated (default: every method both ran)")
    args = ap.parse_args()
    first, second = load(args.first), load(args.second)
    counts = sorted({c for (_, c) in second} & {c for (_, c) in first})
    methods = [m for m in args.methods.split(",") if m] or sorted(
        {m for (m, _) in second} & {m for (m, _) in first} - {args.baseline})
    a, b = Path(args.first).name, Path(args.second).name

    print(f"{args.baseline}: {b} − {a}, accuracy points, paired by seed:\n")
    print(f"| labelled | {args.baseline}, {a} | {args.baseline}, {b} | {b} − {a} |")
    print("|---|---|---|---|")
    for c in counts:
        x, y = first.get((args.baseline, c), {}), second.get((args.baseline, c), {})
        seeds = sorted(set(x) & set(y))
        if not seeds:
            continue
        mx, my = np.mean([x[s] for s in seeds]), np.mean([y[s] for s in seeds])
        print(f"| {c} | {mx:.2f} | {my:.2f} | {paired({s: y[s] - x[s] for s in seeds})} |")

    for m in methods:
        print(f"\n{m} − {args.baseline}, accuracy points, paired by seed (difference: {b} gain − {a} gain):\n")
        print(f"| labelled | {a} | {b} | difference |")
        print("|---|---|---|---|")
        for c in counts:
            ga, gb = gains(first, m, args.baseline, c), gains(second, m, args.baseline, c)
            if not any(ga.values()) and not any(gb.values()):
                continue  # no run, or the shared initial model (round 0): nothing to compare
            both = sorted(set(ga) & set(gb))
            print(f"| {c} | {paired(ga)} | {paired(gb)} | {paired({s: gb[s] - ga[s] for s in both})} |")


if __name__ == "__main__":
    main()
