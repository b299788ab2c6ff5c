"""The experiment Makefile end to end (real make, real pipes), and the learning-curve arithmetic."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SAMPLE, alcli_exe, run_alcli

from alcli.artifacts import Dataset, read_dataset, write_dataset
from alcli.artifacts.report import Report, read_report, write_report
from alcli.report.curves import Run, curve


def _make(cwd: Path, *args: str, dry: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(alcli_exe()).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = ["make", "-f", str(ROOT / "samples" / "experiment.mk"), *(["-n"] if dry else ["-j2"]), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_experiment_runs_resumes_and_recomputes_only_what_is_missing(tmp_path: Path) -> None:
    full = read_dataset(str(SAMPLE))
    rows = np.sort(np.random.default_rng(0).permutation(full.n)[:600])  # the sample is sorted by label
    write_dataset(str(tmp_path / "tiny.h5"), Dataset(full.images[rows], full.labels[rows], full.class_names))
    args = ["DATA=tiny.h5", "NAME=t", "METHODS=random kcenter", "SEEDS=0 1", "ROUNDS=2", "INITIAL=20",
            "BUDGET=10", "TEST=100", "EPOCHS=2"]
    first = _make(tmp_path, *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    out = tmp_path / "runs" / "t"
    reports = sorted(out.glob("*/seed*/round*/report.h5"))
    assert len(reports) == 2 * 2 * 3
    with open(out / "curve.csv") as fh:
        table = {(r["method"], int(r["labeled_count"])): r for r in csv.DictReader(fh)}
    for method in ("random", "kcenter"):
        for rnd, count in enumerate((20, 30, 40)):
            accs = [read_report(str(out / method / f"seed{s}" / f"round{rnd}" / "report.h5")).accuracy for s in (0, 1)]
            row = table[(method, count)]
            assert float(row["mean"]) == pytest.approx(np.mean(accs))
            assert float(row["std"]) == pytest.approx(np.std(accs, ddof=1))
            assert int(row["n_seeds"]) == 2
    assert (out / "curve.png").stat().st_size > 1000
    # round 0 is the shared initial pool: identical for every method
    assert table[("random", 20)]["mean"] == table[("kcenter", 20)]["mean"]

    again = _make(tmp_path, *args, dry=True)
    assert again.returncode == 0 and "alcli" not in again.stdout, again.stdout  # a rerun does no work

    (out / "kcenter" / "seed1" / "round2" / "report.h5").unlink()
    redo = _make(tmp_path, *args, dry=True).stdout
    commands = [line for line in redo.splitlines() if line.startswith("alcli")]
    assert len(commands) == 2, redo  # that round's evaluate, then the curve
    assert "evaluate runs/t/kcenter/seed1/round2/ckpt.h5" in commands[0] and commands[1].startswith("alcli curve")


def test_curve_statistics_by_hand() -> None:
    runs = [Run("random", s, 1, 200, a, f"r{s}") for s, a in [(0, 0.80), (1, 0.84), (2, 0.82)]]
    runs += [Run("kcenter", s, 1, 200, a, f"k{s}") for s, a in [(0, 0.83), (1, 0.85), (2, 0.86)]]
    points = {(p.method, p.labeled_count): p for p in curve(runs)}
    k = points[("kcenter", 200)]
    assert k.mean == pytest.approx((0.83 + 0.85 + 0.86) / 3)
    assert k.std == pytest.approx(np.std([0.83, 0.85, 0.86], ddof=1))
    diffs = np.array([0.03, 0.01, 0.04])
    half = 4.303 * diffs.std(ddof=1) / math.sqrt(3)  # t(0.975, df=2)
    assert k.diff_mean == pytest.approx(diffs.mean())
    assert (k.diff_low, k.diff_high) == (pytest.approx(diffs.mean() - half), pytest.approx(diffs.mean() + half))
    assert points[("random", 200)].diff_mean is None


def test_curve_cli_rejects_bad_layout_and_duplicates(tmp_path: Path) -> None:
    rep = Report(0.5, 1.0, 10, 20, np.zeros((2, 2), np.int64), np.zeros(2), ["a", "b"])
    bad = tmp_path / "report.h5"
    write_report(str(bad), rep)
    proc = run_alcli("curve", bad)
    assert proc.returncode == 2 and "seed<k>" in proc.stderr
    good = tmp_path / "random" / "seed0" / "round0"
    good.mkdir(parents=True)
    shutil.copy(bad, good / "report.h5")
    shutil.copy(bad, good / "copy.h5")
    proc = run_alcli("curve", good / "report.h5", good / "copy.h5")
    assert proc.returncode == 2 and "duplicates" in proc.stderr
