"""`alcli split`: a seeded random subset of a data set's rows as an alcli.labeled artifact (round 0)."""

from __future__ import annotations

import click
import numpy as np

from alcli import console
from alcli.options import INPUT, OUTPUT, Command


def draw(labels: np.ndarray, candidates: np.ndarray, size: int, seed: int, stratified: bool) -> np.ndarray:
    """`size` rows of `candidates` in draw order: a seeded permutation, or per label in proportion to
    the label counts (largest remainder; label -1 is a stratum of its own)."""
    rng = np.random.default_rng(seed)
    perm = candidates[rng.permutation(candidates.size)]
    if not stratified:
        return perm[:size]
    classes, counts = np.unique(labels[perm], return_counts=True)
    quota = counts * size / candidates.size
    take = np.floor(quota).astype(np.int64)
    order = np.lexsort((classes, -(quota - take)))  # largest remainder first, ties by class
    take[order[: size - int(take.sum())]] += 1
    chosen = np.zeros(perm.size, bool)
    for cls, k in zip(classes, take, strict=True):
        chosen[np.flatnonzero(labels[perm] == cls)[:k]] = True
    return perm[chosen]


@click.command("split", cls=Command)
@click.argument("dataset", metavar="DATA.h5", type=INPUT)
@click.option("--size", "-n", type=int, required=True, help="How many rows to draw.")
@click.option("--exclude", "exclude_paths", type=INPUT, multiple=True, metavar="LABELED.h5",
              help="Rows that must not be drawn (e.g. the test split). Repeatable.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stratified/--no-stratified", default=False, show_default=True,
              help="Keep the label proportions of the candidates (rows drawn per label).")
@click.option("-o", "--output", default="-", show_default=True, type=OUTPUT, metavar="OUT.h5", help="- is stdout.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON line on stdout.")
def command(dataset: str, size: int, exclude_paths: tuple[str, ...], seed: int, stratified: bool, output: str,
            as_json: bool) -> None:
    """Draw SIZE rows of DATA.h5 by a seeded permutation (never by position) and write them as an
    alcli.labeled artifact, round 0: a test split, or a random initial labelled set."""
    from alcli.artifacts.io import sha256_file
    from alcli.artifacts.labeled import LabeledSet, write_labeled
    from alcli.artifacts.output import check_output
    from alcli.errors import AlcliError
    from alcli.learn import data

    if as_json and output == "-":
        raise AlcliError("--json prints to stdout, so the artifact needs -o FILE", "--json")
    check_output(output)
    with data.open_pool(dataset) as ds:  # labels and names only: the pixels stay in the file
        candidates = data.exclude_rows(np.arange(ds.n, dtype=np.int64), exclude_paths, ds.n)
    if size < 1:
        raise AlcliError(f"must be at least 1, got {size}", "--size")
    if size > candidates.size:
        raise AlcliError(f"{size} is more than the {candidates.size} rows left to draw from", "--size")
    picks = draw(ds.labels, candidates, size, seed, stratified)
    indices = np.sort(picks)
    lab = LabeledSet(indices, np.zeros(size, np.int32), ds.n, picks, np.zeros(size, np.float64))
    lab.attrs = {"method": "split", "seed": int(seed), "budget": int(size), "stratified": int(stratified),
                 "dataset": ds.name}
    parents = {"dataset": ds.sha256}
    for i, path in enumerate(exclude_paths):
        parents[f"exclude{i}"] = sha256_file(path)
    write_labeled(output, lab, parents=parents)
    counts = np.bincount(ds.labels[indices] + 1, minlength=ds.num_classes + 1)
    hist = {name: int(c) for name, c in zip(ds.class_names, counts[1:], strict=True)}
    if counts[0]:
        hist["unlabelled"] = int(counts[0])
    if as_json:
        console.emit_json({"size": size, "pool_size": ds.n, "candidates": int(candidates.size), "seed": seed,
                           "stratified": stratified, "class_counts": hist})
    console.say(f"[bold]split[/]: {size} of {candidates.size} rows (seed {seed}"
                f"{', stratified' if stratified else ''}) → {output} · per class {hist}")
