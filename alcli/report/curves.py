"""Learning curves from `report` artifacts: accuracy against labelled-set size, per method, mean ± std
over seeds, and the paired difference to a baseline (random) with a 95% confidence interval.

Every method shares the initial pool of its seed with the baseline, so differences are paired by
(seed, labelled count): seed and initial-pool variance then cancel out of the comparison.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from alcli.artifacts.report import Report
from alcli.errors import AlcliError

# runs/<data>/<method>/seed<k>/round<r>/report.h5 (the layout of samples/experiment.mk)
LAYOUT = re.compile(r"(?:^|/)(?P<method>[^/]+)/seed(?P<seed>\d+)/round(?P<round>\d+)/[^/]+$")

# two-sided 95% Student t quantiles, df = 1..30 (beyond: normal)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


@dataclass
class Run:
    method: str
    seed: int
    round: int
    labeled_count: int
    accuracy: float
    path: str


@dataclass
class CurvePoint:
    method: str
    labeled_count: int
    mean: float
    std: float
    n_seeds: int
    diff_mean: float | None = None  # paired difference to the baseline, accuracy points
    diff_low: float | None = None
    diff_high: float | None = None
    n_pairs: int = 0


def run_of(path: str, report: Report) -> Run:
    """Method and seed from the report's path (the experiment layout); round from the path too."""
    match = LAYOUT.search(path.replace("\\", "/"))
    if match is None:
        raise AlcliError("path does not follow <method>/seed<k>/round<r>/report.h5", path)
    return Run(match["method"], int(match["seed"]), int(match["round"]), report.labeled_count,
               report.accuracy, path)


def t975(df: int) -> float:
    return _T975[df - 1] if 1 <= df <= len(_T975) else 1.96


def curve(runs: list[Run], baseline: str = "random") -> list[CurvePoint]:
    """One point per (method, labelled count): mean ± sample std over seeds; paired diff to baseline."""
    seen: dict[tuple[str, int, int], str] = {}
    acc: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for run in runs:
        key = (run.method, run.seed, run.labeled_count)
        if key in seen:
            raise AlcliError(f"duplicates {seen[key]} (same method, seed and labelled count)", run.path)
        seen[key] = run.path
        acc[(run.method, run.labeled_count)][run.seed] = run.accuracy
    points = []
    for (method, count), by_seed in sorted(acc.items()):
        values = np.array(list(by_seed.values()))
        point = CurvePoint(method, count, float(values.mean()),
                           float(values.std(ddof=1)) if values.size > 1 else 0.0, int(values.size))
        base = acc.get((baseline, count))
        if base is not None and method != baseline:
            common = sorted(set(by_seed) & set(base))
            diffs = np.array([by_seed[s] - base[s] for s in common])
            if diffs.size:
                point.diff_mean = float(diffs.mean())
                point.n_pairs = int(diffs.size)
                if diffs.size > 1:
                    half = t975(diffs.size - 1) * float(diffs.std(ddof=1)) / math.sqrt(diffs.size)
                    point.diff_low, point.diff_high = point.diff_mean - half, point.diff_mean + half
        points.append(point)
    return points


def to_csv(points: list[CurvePoint]) -> str:
    buf = io.StringIO()
    fields = list(asdict(points[0]).keys()) if points else [f for f in CurvePoint.__dataclass_fields__]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for point in points:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(point).items()})
    return buf.getvalue()


def plot(points: list[CurvePoint], path: str, title: str = "") -> None:
    """Accuracy vs labelled images, one line per method with std error bars (the paper's Figure 4)."""
    from alcli.report.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    by_method: dict[str, list[CurvePoint]] = defaultdict(list)
    for point in points:
        by_method[point.method].append(point)
    for method, pts in sorted(by_method.items()):
        pts.sort(key=lambda p: p.labeled_count)
        ax.errorbar([p.labeled_count for p in pts], [100 * p.mean for p in pts], yerr=[100 * p.std for p in pts],
                    marker="o", markersize=3.5, capsize=3, linewidth=1.4, label=method)
    ax.set_xlabel("Number of labelled images")
    ax.set_ylabel("Test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save(fig, path)
