"""`alcli export`: a round's picks as a work list for annotators (csv, jsonl, Label Studio tasks, txt)."""

from __future__ import annotations

import os

import click

from alcli import console
from alcli.errors import AlcliError
from alcli.options import INPUT, OUTPUT, Command, check_distinct

_HELP = """Write the picks of LABELED.h5 (an alcli.labeled artifact of DATA.h5) as a work list for
annotators. Every format carries each row's id (DATA's `ids` entry, the path `pack` stored, or the row
number as text) and its row, so nothing depends on file names.

\b
Formats (--format, else from OUT's extension):
  csv           id,row,rank,score,image,label,answer (+ suggestion,suggestion_score with --suggest);
                annotators fill `label` with a class name or `answer` with `skip`: `alcli label` reads it back
  jsonl         one object a line with the same keys (.jsonl)
  label-studio  a JSON task list (.json) {"data": {"image", "alcli_id", "alcli_row", "alcli_rank"}}, plus
                label_config.xml beside OUT (or at --config-out; required with -o -)
  txt           one id a line (for rsync --files-from)

`image` is the id, or with --copy-to the copied file's name under DIR; --url-prefix P makes it
P + that name, percent-encoded with '/' kept (for Label Studio's local files: --url-prefix
'/data/local-files/?d=pool/').

--copy-to DIR writes each picked image into DIR under its id: the original file when the images root
(--images-root, else the folder `pack` recorded) still has it, else the row decoded as PNG (ID.png
when the id does not end in .png), plus DIR/manifest.csv (file,id,row). DIR may not be (inside) the
images root; a file already in DIR under a name alcli writes must hold exactly what alcli would write
(re-running is safe), otherwise nothing is written. Every output is written atomically.
"""


@click.command("export", cls=Command, help=_HELP)
@click.argument("labeled_path", metavar="LABELED.h5", type=INPUT)
@click.option("--dataset", "-d", "dataset_path", required=True, type=INPUT, metavar="DATA.h5",
              help="The data set LABELED indexes (the pool).")
@click.option("-o", "--output", required=True, type=OUTPUT, metavar="OUT|-", help="The work list; - is stdout.")
@click.option("--format", "-f", "fmt", type=click.Choice(["csv", "jsonl", "label-studio", "txt"]),
              help="Default: from OUT's extension (.csv, .jsonl, .json = label-studio, .txt).")
@click.option("--picks", type=click.Choice(["last", "all"]), default="last", show_default=True,
              help="last: the newest round's picks in the order the method chose them, with their scores. "
                   "all: every row of LABELED still unlabelled (-1) in DATA, by row.")
@click.option("--url-prefix", metavar="P", help="Image URL = P + percent-encoded file name ('/' kept).")
@click.option("--copy-to", "copy_to", type=OUTPUT, metavar="DIR", help="Copy the picked images into DIR.")
@click.option("--images-root", type=INPUT, metavar="FOLDER",
              help="Where the original files are (ids relative to it). Default: the folder `pack` read.")
@click.option("--suggest", "suggest_path", type=INPUT, metavar="EMB.h5",
              help="Add the model's top class and its probability (EMB's `probs`).")
@click.option("--classes", "classes", type=INPUT, metavar="a,b,c|FILE",
              help="Class names for label_config.xml and suggestions when DATA has none (after "
                   "`pack --unlabelled`); names DATA lacks are appended. FILE: one name a line.")
@click.option("--config-out", type=OUTPUT, metavar="FILE",
              help="label-studio: where label_config.xml goes (default: beside OUT).")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON line on stdout (needs -o FILE).")
def command(labeled_path: str, dataset_path: str, output: str, fmt: str | None, picks: str, url_prefix: str | None,
            copy_to: str | None, images_root: str | None, suggest_path: str | None, classes: str | None,
            config_out: str | None, as_json: bool) -> None:
    from alcli.artifacts import read_embeddings, read_labeled
    from alcli.artifacts.dataset import dataset_from
    from alcli.artifacts.io import STDIO, open_input
    from alcli.artifacts.output import check_output
    from alcli.labelling import copyto, worklist
    from alcli.labelling import merge as labelling

    if as_json and output == STDIO:
        raise AlcliError("--json prints to stdout, so the work list needs -o FILE", "--json")
    fmt = worklist.format_for(output, fmt)
    if images_root is not None and copy_to is None:
        raise AlcliError("the originals are only read for --copy-to", "--images-root")
    if config_out is not None and fmt != "label-studio":
        raise AlcliError("only the label-studio format has a label_config.xml", "--config-out")
    config = worklist.config_path(output, config_out) if fmt == "label-studio" else None
    inputs = [(flag, p) for flag, p in (("LABELED", labeled_path), ("--dataset", dataset_path),
                                        ("--suggest", suggest_path), ("--classes", classes)) if p]
    outputs = [("-o", output)] + ([("label_config.xml", config)] if config else [])
    check_distinct(outputs, inputs)
    for _, path in outputs:
        if not (copy_to and path != STDIO and _same_folder(os.path.dirname(os.path.abspath(path)), copy_to)):
            check_output(path)  # (a list inside --copy-to DIR: DIR is made before the list is written)

    with open_input(dataset_path) as src:  # the pixels only when they are copied
        data = dataset_from(src, with_images=copy_to is not None)
    labeled = read_labeled(labeled_path)
    worklist.check_pool(labeled, data)
    labelling.check_unique_ids(data)
    rows, scores = worklist.picked(labeled, data, picks)
    class_names, appended = labelling.class_names(data.class_names, classes)
    if fmt == "label-studio" and not class_names:
        raise AlcliError("has no class_names (packed --unlabelled?): label_config.xml needs them; give "
                         "--classes a,b,c or --classes FILE", data.name)
    suggested = version = None
    if suggest_path:
        emb = read_embeddings(suggest_path, load=("probs",))
        suggested = worklist.suggestions(emb, rows, class_names, data)
        version = worklist.model_version(emb)

    copies = todo = None
    ids = data.row_ids()
    names = [ids[r] for r in rows.tolist()]
    if copy_to is not None:
        root = copyto.images_root(data, images_root)
        copies = copyto.plan(data, rows, root)
        todo = copyto.check(copies, copy_to, root, data, [p for _, p in outputs if p != STDIO])
        names = [c.file for c in copies]
    images = [worklist.image_field(n, url_prefix) for n in names]
    items = worklist.build(data, rows, scores, images, suggested)
    text = worklist.render(items, fmt, suggested is not None, version or "")

    counts = copyto.write(copies, todo, copy_to, data) if copies is not None and todo is not None else None
    if config is not None:
        worklist.write_text(config, worklist.label_config(class_names))
    worklist.write_text(output, text)

    summary = {"rows": len(items), "format": fmt, "picks": picks, "output": output, "config": config,
               "copy_to": copy_to, "copied": counts, "classes_appended": appended, "suggest": suggest_path is not None,
               "already_labelled": int((data.labels[rows] >= 0).sum()),
               "round": int(labeled.rounds.max()) if labeled.rounds.size else None}
    _report(summary, as_json, url_prefix)


def _same_folder(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _report(summary: dict[str, object], as_json: bool, url_prefix: str | None) -> None:
    from rich.markup import escape

    if as_json:
        console.emit_json(summary)
    where = "stdout" if summary["output"] == "-" else escape(str(summary["output"]))
    what = "this round's picks" if summary["picks"] == "last" else "labelled rows still without a label"
    line = f"[bold]export[/]: {summary['rows']} rows ({what}) as {summary['format']} → {where}"
    if summary["already_labelled"]:
        line += f" · {summary['already_labelled']} already labelled in the data set"
    if summary["config"]:
        line += f" · {escape(str(summary['config']))}"
    counts = summary["copied"]
    if isinstance(counts, dict):
        line += (f" · images → {escape(os.path.join(str(summary['copy_to']), ''))} ({counts['originals']} originals, "
                 f"{counts['decoded']} decoded as PNG, {counts['unchanged']} already there)")
    console.say(line)
    if summary["classes_appended"]:
        added = escape(", ".join(map(str, summary["classes_appended"])))
        console.say(f"[yellow]note[/]: class names not in the data set: {added}")
    if summary["format"] == "label-studio" and url_prefix is None:
        console.say("[yellow]note[/]: image fields are bare file names; Label Studio needs URLs (--url-prefix)")
    if summary["rows"] == 0:
        console.say("[yellow]note[/]: the work list is empty")
