"""`alcli curve`: learning curves (mean ± std over seeds, paired difference to random) from reports."""

from __future__ import annotations

import os

import click

from alcli import console
from alcli.artifacts.output import atomic_path
from alcli.errors import AlcliError
from alcli.options import INPUT, OUTPUT, Command


@click.command("curve", cls=Command)
@click.argument("reports", nargs=-1, required=True, metavar="REPORT.h5...", type=INPUT)
@click.option("--baseline", default="random", show_default=True, help="Method the others are paired against.")
@click.option("--csv", "csv_path", type=OUTPUT, metavar="OUT.csv", help="Write the table as CSV.")
@click.option("--plot", "plot_path", type=OUTPUT, metavar="OUT.png",
              help="Draw accuracy vs labelled images with error bars.")
@click.option("--title", default="", help="Plot title.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per curve point on stdout.")
def command(reports: tuple[str, ...], baseline: str, csv_path: str | None, plot_path: str | None, title: str,
            as_json: bool) -> None:
    """Gather `alcli evaluate` reports laid out as <method>/seed<k>/round<r>/report.h5 (as
    samples/experiment.mk writes them) into a learning curve: per method and labelled-set size the mean
    and std of test accuracy over seeds, and the paired difference to --baseline with a 95% CI
    (Student t over seeds; every method shares its seed's initial pool with the baseline)."""
    from alcli.artifacts.report import read_report
    from alcli.report import curves

    for path in (csv_path, plot_path):
        if path and os.path.abspath(path) in {os.path.abspath(r) for r in reports}:
            raise AlcliError("would overwrite an input report", path)
    runs = [curves.run_of(path, read_report(path)) for path in reports]
    points = curves.curve(runs, baseline)
    if csv_path:
        with atomic_path(csv_path, ".csv") as tmp, open(tmp, "w") as fh:
            fh.write(curves.to_csv(points))
    if plot_path:
        with atomic_path(plot_path, ".png") as tmp:
            curves.plot(points, tmp, title)
    if as_json:
        for point in points:
            console.emit_json(console.clean_nan(point.__dict__))
    rows = [(p.method, p.labeled_count, f"{100 * p.mean:.2f}", f"{100 * p.std:.2f}", p.n_seeds, _diff(p))
            for p in points]
    console.show(console.table(f"learning curve ({len(runs)} reports)",
                               ["method", "labelled", "acc %", "std", "seeds", f"vs {baseline} (95% CI)"], rows))


def _diff(p: object) -> str:
    mean, low, high = p.diff_mean, p.diff_low, p.diff_high  # type: ignore[attr-defined]
    if mean is None:
        return ""
    if low is None:
        return f"{100 * mean:+.2f}"
    return f"{100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"
