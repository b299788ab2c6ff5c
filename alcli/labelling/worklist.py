"""The work list: a round's picks as rows for annotators, and every format `alcli export` writes.

One row per picked data-set row: `id` (the data set's `ids` entry, or the row number as text), `row`,
`rank` (1-based position in the list), `score` (why it was picked; empty when unknown), `image` (what
to show: the file name, or a URL with a prefix), `label` and `answer` (empty: the annotator writes a
class name in `label`, or `skip` in `answer`), plus `suggestion` and `suggestion_score` (the model's top
class and its probability) when asked. The formats:

- csv: header `id,row,rank,score,image,label,answer[,suggestion,suggestion_score]`, UTF-8, `\\n` lines.
  It is also the answer template `alcli label` reads back.
- jsonl: one object a line with the same keys (`label`/`answer` null, an unknown score null).
- label-studio: a JSON list of tasks `{"data": {"image", "alcli_id", "alcli_row", "alcli_rank"}}` (never
  a top-level `id` nor `data.id`: Label Studio overwrites both), with `predictions` for suggestions;
  plus `label_config.xml` (`Image name="image"`, `Choices name="choice"`).
- txt: one id a line.

Copies of the images for annotators (`--copy-to`) live in `alcli.labelling.copyto`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from alcli.artifacts.dataset import Dataset
from alcli.artifacts.embeddings import Embeddings
from alcli.artifacts.io import STDIO
from alcli.artifacts.labeled import LabeledSet
from alcli.artifacts.output import atomic_path
from alcli.errors import AlcliError

FORMATS = ("csv", "jsonl", "label-studio", "txt")
BY_EXTENSION = {".csv": "csv", ".jsonl": "jsonl", ".json": "label-studio", ".txt": "txt"}
COLUMNS = ("id", "row", "rank", "score", "image", "label", "answer")
SUGGEST_COLUMNS = ("suggestion", "suggestion_score")
CONFIG_NAME = "label_config.xml"
PICKS = ("last", "all")


@dataclass
class Item:
    """One row of the work list."""

    id: str
    row: int
    rank: int
    score: float | None
    image: str
    suggestion: str | None = None
    suggestion_score: float | None = None


# ------------------------------------------------------------------------------------------ the inputs


def format_for(output: str, given: str | None) -> str:
    """The format: `given`, else from OUT's extension (.csv, .jsonl, .json = label-studio, .txt)."""
    if given is not None:
        return given
    choices = "|".join(FORMATS)
    if output == STDIO:
        raise AlcliError(f"writing to stdout (-o -) needs --format {choices}", "--format")
    ext = os.path.splitext(output)[1].lower()
    if ext not in BY_EXTENSION:
        raise AlcliError(f"cannot tell the format from {os.path.basename(output)!r} (.csv, .jsonl, .json, .txt): "
                         f"give --format {choices}", output)
    return BY_EXTENSION[ext]


def check_pool(labeled: LabeledSet, data: Dataset) -> None:
    """LABELED must index DATA: the same pool size."""
    if labeled.pool_size != data.n:
        raise AlcliError(f"a labelled artifact from another pool: pool_size {labeled.pool_size}, "
                         f"{data.name} has {data.n} rows", labeled.name)


def picked(labeled: LabeledSet, data: Dataset, which: str) -> tuple[np.ndarray, list[float | None]]:
    """(rows, scores) in work-list order. `last`: LABELED's `last_picks` in the order the method chose them
    with their `last_scores` (unknown when absent or not finite); `all`: every row of LABELED whose label
    in DATA is still -1, ascending, without scores."""
    if which == "last":
        rows = np.asarray(labeled.last_picks, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= data.n):
            raise AlcliError(f"'last_picks' holds rows outside the pool [0, {data.n})", labeled.name)
        raw = labeled.last_scores if labeled.last_scores.shape == rows.shape else np.full(rows.size, np.nan)
        scores = [float(s) if math.isfinite(s) else None for s in raw.tolist()]
        return rows, scores
    if which == "all":
        rows = labeled.indices[data.labels[labeled.indices] < 0]
        return rows, [None] * int(rows.size)
    raise ValueError(f"unknown picks {which!r}")


def suggestions(emb: Embeddings, rows: np.ndarray, class_names: list[str],
                data: Dataset) -> tuple[list[str], list[float]]:
    """The model's top class name and its probability for each row, from EMB's `probs`."""
    if emb.probs is None:
        raise AlcliError("holds no 'probs' (model outputs): --suggest needs embeddings written by "
                         "`alcli embed` from a checkpoint", emb.name)
    if emb.pool_size != data.n:
        raise AlcliError(f"embeddings of another pool: pool_size {emb.pool_size}, {data.name} has {data.n} "
                         "rows", emb.name)
    classes = emb.probs.shape[1]
    if len(class_names) < classes:
        raise AlcliError(f"'probs' has {classes} classes, the data set names {len(class_names)}: "
                         "give --classes", emb.name)
    probs = emb.probs[emb.positions_of(rows, "picked", emb.name)] if rows.size else emb.probs[:0]
    top = probs.argmax(axis=1) if rows.size else np.zeros(0, np.int64)
    best = probs[np.arange(rows.size), top] if rows.size else np.zeros(0)
    return [class_names[int(c)] for c in top], [round(float(p), 6) for p in best]


def model_version(emb: Embeddings) -> str:
    checkpoint = emb.attrs.get("checkpoint")
    return os.path.basename(str(checkpoint)) if checkpoint else os.path.basename(emb.name)


def image_field(name: str, url_prefix: str | None) -> str:
    """What a task shows: `name` (the id, or its copied file under --copy-to), or with a prefix the URL
    prefix + name percent-encoded ('/' kept)."""
    return name if url_prefix is None else url_prefix + quote(name, safe="/")


def build(data: Dataset, rows: np.ndarray, scores: list[float | None], images: list[str],
          suggested: tuple[list[str], list[float]] | None = None) -> list[Item]:
    """The work list: one Item per row, ranked 1.. in the given order."""
    ids = data.row_ids()
    items = [Item(ids[int(r)], int(r), rank, s, img)
             for rank, (r, s, img) in enumerate(zip(rows.tolist(), scores, images, strict=True), start=1)]
    if suggested is not None:
        for item, name, prob in zip(items, *suggested, strict=True):
            item.suggestion, item.suggestion_score = name, prob
    return items


# ------------------------------------------------------------------------------------------ the formats


def render(items: list[Item], fmt: str, suggest: bool, version: str = "") -> str:
    """The work list as text in one of FORMATS."""
    if fmt == "csv":
        return _csv(items, suggest)
    if fmt == "jsonl":
        return "".join(_json(_record(i, suggest)) + "\n" for i in items)
    if fmt == "label-studio":
        tasks = [_task(i, suggest, version) for i in items]
        return "[\n" + ",\n".join(_json(t) for t in tasks) + ("\n]\n" if tasks else "]\n")
    if fmt == "txt":
        bad = next((i for i in items if "\n" in i.id or "\r" in i.id), None)
        if bad is not None:
            raise AlcliError(f"id of row {bad.row} holds a line break: use csv or jsonl", "--format")
        return "".join(i.id + "\n" for i in items)
    raise ValueError(f"unknown format {fmt!r}")


def _json(obj: object) -> str:
    """Compact JSON keeping unicode readable, except the characters Python's str.splitlines() breaks lines
    at (U+0085, U+2028, U+2029; JSON escapes the rest), so a JSON line is always one line."""
    text = json.dumps(obj, ensure_ascii=False)
    return text.replace("\u0085", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _record(item: Item, suggest: bool) -> dict[str, object]:
    out: dict[str, object] = {"id": item.id, "row": item.row, "rank": item.rank, "score": item.score,
                              "image": item.image, "label": None, "answer": None}
    if suggest:
        out["suggestion"], out["suggestion_score"] = item.suggestion, item.suggestion_score
    return out


def _csv(items: list[Item], suggest: bool) -> str:
    buf = io.StringIO()
    # Python 3.11's writer quotes only the line terminator's characters: a lone \r would go out bare
    carriage = any("\r" in f"{i.id}{i.image}{i.suggestion or ''}" for i in items)
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL if carriage else csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS + (SUGGEST_COLUMNS if suggest else ()))
    for item in items:
        score = "" if item.score is None else repr(item.score)
        row = [item.id, item.row, item.rank, score, item.image, "", ""]
        if suggest:
            row += [item.suggestion or "", "" if item.suggestion_score is None else repr(item.suggestion_score)]
        writer.writerow(row)
    return buf.getvalue()


def _task(item: Item, suggest: bool, version: str) -> dict[str, object]:
    task: dict[str, object] = {"data": {"image": item.image, "alcli_id": item.id, "alcli_row": item.row,
                                        "alcli_rank": item.rank}}
    if suggest and item.suggestion is not None:
        result = {"from_name": "choice", "to_name": "image", "type": "choices",
                  "value": {"choices": [item.suggestion]}}
        task["predictions"] = [{"model_version": version, "score": item.suggestion_score, "result": [result]}]
    return task


def label_config(class_names: list[str]) -> str:
    """Label Studio's labelling interface for the tasks: the image and one choice per class name."""
    choices = "".join(f"    <Choice value={quoteattr(name)}/>\n" for name in class_names)
    return ('<View>\n  <Image name="image" value="$image"/>\n  <Choices name="choice" toName="image">\n'
            f"{choices}  </Choices>\n</View>\n")


def config_path(output: str, given: str | None) -> str:
    """Where label_config.xml goes: --config-out, else beside OUT (stdout has no beside)."""
    if given is not None:
        return given
    if output == STDIO:
        raise AlcliError("label-studio writes label_config.xml beside OUT: with -o - give --config-out FILE",
                         "--config-out")
    return os.path.join(os.path.dirname(output), CONFIG_NAME)


def write_text(path: str, text: str) -> None:
    """UTF-8 text to `path` atomically (or to stdout for `-`)."""
    with atomic_path(path, ".tmp") as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
