"""`alcli map`: a 2-D map of the pool with the labelled points and the last round's picks (Figure 5)."""

from __future__ import annotations

import time

import click
import numpy as np

from alcli import console
from alcli.options import INPUT, OUTPUT, Command


@click.command("map", cls=Command)
@click.argument("embeddings", metavar="EMBEDDINGS", type=INPUT)
@click.option("--labeled", "labeled_path", type=INPUT, required=True, metavar="LABELED.h5",
              help="The labelled set to draw: earlier rounds in blue, its last round's picks in vermillion.")
@click.option("--compare", "compare_paths", type=INPUT, multiple=True, metavar="LABELED.h5",
              help="Another labelled set of the same pool, drawn in its own panel over the same map. Repeatable.")
@click.option("-o", "--output", type=OUTPUT, required=True, metavar="MAP.png",
              help="The picture: .png, .pdf or .svg.")
@click.option("--projection", type=click.Choice(["tsne", "pca"]), default="tsne", show_default=True,
              help="t-SNE (openTSNE, FFT gradients, from 50 PCA dimensions) or PCA.")
@click.option("--max-points", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Beyond this many points, subsample the unlabelled rest (never labelled points or picks).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subsample and the t-SNE.")
@click.option("--coords-out", type=OUTPUT, metavar="COORDS.h5",
              help="Also keep the 2-D coordinates (alcli.coords); pass it as EMBEDDINGS to redraw without projecting.")
@click.option("--title", default="", help="A line above the panels.")
def command(embeddings: str, labeled_path: str, compare_paths: tuple[str, ...], output: str, projection: str,
            max_points: int, seed: int, coords_out: str | None, title: str) -> None:
    """Draw EMBEDDINGS (alcli.embeddings, or alcli.coords from --coords-out; - reads stdin) in 2-D:
    the labelled points of --labeled, its last round's picks and the rest, one panel per labelled set
    (--labeled, then each --compare), all over the same coordinates."""
    from alcli.artifacts import read_labeled
    from alcli.artifacts.coords import Coords, write_coords
    from alcli.artifacts.output import atomic_path, check_output
    from alcli.report import mapping, plots

    t0 = time.perf_counter()
    fmt = plots.image_format(output)
    check_output(output)
    if coords_out:
        check_output(coords_out)
    labs = [read_labeled(p) for p in (labeled_path, *compare_paths)]
    src = _read_points(embeddings, labs)
    rows_all = src.indices
    keep_rows = np.unique(np.concatenate([lab.indices for lab in labs]))
    keep_pos = _positions(rows_all, keep_rows, src.name, labs)
    if isinstance(src, Coords):
        chosen, xy = np.arange(rows_all.size), src.coords
        console.say(f"map: {rows_all.size:,} points from {src.name} (projection {src.attrs.get('projection', '?')})")
    else:
        chosen = mapping.choose_points(rows_all.size, keep_pos, max_points, seed)
        if chosen.size < rows_all.size:
            console.say(f"map: {chosen.size:,} of {rows_all.size:,} points (every labelled point and pick, "
                        f"a seeded sample of the rest: --max-points {max_points:,})")
        from alcli.selection.common import gather

        xy = mapping.project(gather(src.features, chosen), projection, seed, say=console.say)
    rows = rows_all[chosen]
    panels = [mapping.panel_of(lab, rows) for lab in labs]
    if coords_out:
        attrs = {"projection": projection if not isinstance(src, Coords) else src.attrs.get("projection", ""),
                 "seed": int(seed), "points_total": int(rows_all.size), "embeddings": src.name}
        write_coords(coords_out, Coords(xy, rows, src.pool_size, attrs), parents={"embeddings": src.sha256})
    with atomic_path(output, "." + fmt) as tmp:
        plots.draw_map(xy, panels, tmp, fmt, title, subsampled=chosen.size < rows_all.size)
    how = "coords" if isinstance(src, Coords) else projection
    console.say(f"[bold]map[/]: {rows.size:,} points · {len(panels)} panel{'s' if len(panels) > 1 else ''} · "
                f"{how} · {time.perf_counter() - t0:.1f} s → {output}")


def _read_points(path: str, labs: list) -> object:
    """Embeddings (features only) or a coords artifact; every labelled set must be of its pool."""
    from alcli.artifacts.coords import coords_from
    from alcli.artifacts.embeddings import embeddings_from
    from alcli.artifacts.io import format_of, open_input
    from alcli.errors import AlcliError

    with open_input(path) as src:
        data = coords_from(src) if format_of(src) == "alcli.coords" else embeddings_from(src, load=())
    for lab in labs:
        if lab.pool_size != data.pool_size:
            raise AlcliError(f"is for a pool of {lab.pool_size:,} rows, {data.name} for {data.pool_size:,}: "
                             "labelled sets must come from the same pool", lab.name)
    return data


def _positions(rows_all: np.ndarray, rows: np.ndarray, name: str, labs: list) -> np.ndarray:
    from alcli.errors import AlcliError

    pos = np.minimum(np.searchsorted(rows_all, rows), rows_all.size - 1)
    missing = rows_all[pos] != rows
    if missing.any():
        row = int(rows[missing][0])
        owner = next(lab.name for lab in labs if row in set(lab.indices.tolist()))
        raise AlcliError(f"labelled row {row} has no point in {name} (embedded with --exclude?)", owner)
    return pos
