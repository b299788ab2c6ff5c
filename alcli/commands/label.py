"""`alcli label`: annotators' answers merged into a new data set artifact."""

from __future__ import annotations

import click

from alcli import console
from alcli.labelling.answers import FORMATS
from alcli.labelling.merge import RESOLVE
from alcli.options import INPUT, OUTPUT, Command


@click.command("label", cls=Command)
@click.argument("dataset", metavar="DATA.h5", type=INPUT)
@click.argument("answer_paths", nargs=-1, required=True, metavar="ANSWERS...", type=INPUT)
@click.option("-o", "--output", type=OUTPUT, metavar="DATA2.h5",
              help="The data set with the answers' labels (- = stdout). Required unless --dry-run.")
@click.option("--format", "fmt", default="auto", show_default=True, type=click.Choice(FORMATS),
              help="csv/jsonl: alcli export's work list; label-studio, label-studio-min, label-studio-csv: Label"
                   " Studio's JSON, JSON_MIN and CSV exports; folder: CLASS/FILE tree. auto recognises each.")
@click.option("--id-field", metavar="KEY", help="The key holding the id (default: id, or Label Studio's alcli_id"
              " then image).")
@click.option("--label-field", metavar="KEY", help="The key holding the class name (default: label, or Label"
              " Studio's choice control).")
@click.option("--strip-prefix", default="", metavar="P", help="Remove P from the start of every answer's id.")
@click.option("--classes", metavar="a,b,c|FILE", type=INPUT,
              help="Class names (comma-separated, or a file with one a line): set them when DATA has none,"
                   " or append new ones.")
@click.option("--relabel", is_flag=True, help="Answers may change a row's existing label.")
@click.option("--resolve", type=click.Choice(RESOLVE),
              help="Several different answers for one row: take the majority (ties: the latest) or the latest."
                   " Without it they are an error.")
@click.option("--labeled", "labeled_path", type=INPUT, metavar="L.h5",
              help="The labelled set whose picks were sent out (for --labeled-out and the pending count).")
@click.option("--labeled-out", type=OUTPUT, metavar="L2.h5",
              help="L.h5 minus the picks still without a label, so `train` accepts it.")
@click.option("--skipped-out", type=OUTPUT, metavar="S.h5",
              help="The skipped rows as an alcli.labeled artifact, for `select --exclude`.")
@click.option("--dry-run", is_flag=True, help="Check and count everything, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON line on stdout.")
def command(dataset: str, answer_paths: tuple[str, ...], output: str | None, fmt: str, id_field: str | None,
            label_field: str | None, strip_prefix: str, classes: str | None, relabel: bool, resolve: str | None,
            labeled_path: str | None, labeled_out: str | None, skipped_out: str | None, dry_run: bool,
            as_json: bool) -> None:
    """Merge the answers in ANSWERS (files or folders; - = stdin) into DATA.h5's labels and write DATA2.h5.

    Ids are matched as written, then URL-decoded with `\\` as `/` and --strip-prefix removed, then as the
    tail of exactly one id in DATA (a bare file name must be unique). Every answer is checked before
    anything is written; problems are listed on one line (the first 10 of each kind), exit 2. Rows that
    get a label are stamped with this round's `label_round`; unanswered rows keep -1."""
    import numpy as np

    from alcli.artifacts.dataset import dataset_from, write_dataset
    from alcli.artifacts.io import not_reading, open_input
    from alcli.artifacts.labeled import read_labeled, write_labeled
    from alcli.artifacts.output import check_output
    from alcli.errors import AlcliError
    from alcli.labelling import merge as labelling
    from alcli.labelling.answers import Fields, read_answers
    from alcli.problems import Problems

    outputs = [p for p in (output, labeled_out, skipped_out) if p is not None]
    if output is None and not dry_run:
        raise AlcliError("missing -o DATA2.h5 (or --dry-run to only check)", "-o")
    if labeled_out and not labeled_path:
        raise AlcliError("needs --labeled L.h5 (the set to remove pending picks from)", "--labeled-out")
    if outputs.count("-") + as_json > 1:
        raise AlcliError("only one of -o, --labeled-out, --skipped-out and --json can use stdout", "-")
    if [dataset, *answer_paths, labeled_path].count("-") > 1:
        raise AlcliError("stdin can carry only one input", "-")
    if not dry_run:
        for path in outputs:
            check_output(path)
    with open_input(dataset) as src:
        data = dataset_from(src, with_images=False)
        labelling.check_unique_ids(data)
        with not_reading():  # merging and the other inputs: their errors are not DATA's
            picks = None
            if labeled_path:
                labeled = read_labeled(labeled_path)
                if labeled.pool_size != data.n:
                    raise AlcliError(f"is for a pool of {labeled.pool_size} rows, {data.name} has {data.n}",
                                     labeled.name)
                picks = labeled.indices
            problems = Problems()
            fields = Fields(id_field, label_field)
            answers = [read_answers(path, fmt, fields, problems) for path in answer_paths]
            merged = labelling.merge(data, answers, classes=classes, relabel=relabel, resolve=resolve,
                                     strip_prefix=strip_prefix, picks=picks, problems=problems)
            parents = {"dataset": data.sha256}
            parents.update({f"answers{i}": a.sha256 for i, a in enumerate(answers)})
            if merged.added_classes:
                console.say(f"[yellow]warning[/]: adding class names {', '.join(merged.added_classes)}"
                            f" (now {len(merged.class_names)})")
            # everything computed before the first file is written
            pruned = labelling.without_pending(labeled, merged.labels) if labeled_out and not dry_run else None
            skipped = (labelling.skipped_set(merged.skipped, data.n, merged.round)
                       if skipped_out and not dry_run else None)
        if not dry_run:
            if output is not None:
                data.labels, data.label_round, data.class_names = merged.labels, merged.label_round, merged.class_names
                write_dataset(output, data, parents, images_from=src.file["images"])
            if labeled_out and pruned is not None:
                write_labeled(labeled_out, pruned, parents={"labeled": labeled.sha256, **parents})
            if skipped_out and skipped is not None:
                write_labeled(skipped_out, skipped, parents)
    counts = merged.counts
    stamped = merged.round if counts["new"] + counts["relabelled"] else None
    info = {**counts, "round": stamped, "classes_added": merged.added_classes, "dry_run": dry_run,
            "files": [{"name": a.name, "format": a.format, "answers": len(a)} for a in answers]}
    if as_json:
        console.emit_json(info)
    where = "nothing written (dry run)" if dry_run else f"→ {output}"
    console.say(f"[bold]label[/]: {counts['answers']} answers: {counts['new']} new, {counts['unchanged']} unchanged,"
                f" {counts['relabelled']} relabelled, {counts['skipped']} skipped, {counts['pending']} pending,"
                f" {counts['rejected']} rejected · {int(np.sum(merged.labels >= 0))}/{data.n} rows labelled"
                f"{'' if stamped is None else f' (round {stamped})'} {where}")
