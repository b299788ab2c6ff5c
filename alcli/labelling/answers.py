"""Reading annotators' answers: the one home for answer formats, their detection and their parsers.

Formats (`--format`; `auto` recognises each by its content):
- `csv` / `jsonl`: alcli's work list (`alcli export`), keys `id,row,rank,score,image,label,answer`: a
  class name in `label`, or `skip` in `answer`.
- `label-studio`: Label Studio's JSON export, tasks `{"data": {...}, "annotations": [{"result": [{"from_name":
  "choice", "type": "choices", "value": {"choices": [NAME]}}], "was_cancelled": ...}]}`; a cancelled
  annotation (Skip) is a `skip` answer; `predictions` (also copied into annotations) are ignored.
- `label-studio-min` / `label-studio-csv`: JSON_MIN and CSV (or TSV), one flat record per annotation: the
  task's data keys plus `choice` (a name, or `{"choices": [...]}`, as JSON text in CSV). Label Studio
  leaves cancelled annotations out of both.
- `folder`: FOLDER/CLASS/FILE (ImageFolder, as FiftyOne, CVAT, Ultralytics export); the id is FILE's path
  below CLASS; files directly in FOLDER are not answers.
Label Studio ids come from `data.alcli_id` (and `alcli_row`), else from the `image` URL (`?d=` for local
files, else its path). Answers keep their reading order and Label Studio's `updated_at` for `--resolve`.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alcli.labelling.ids import id_from_url
from alcli.problems import Problems

FORMATS = ("auto", "csv", "jsonl", "label-studio", "label-studio-min", "label-studio-csv", "folder")
SKIP = "skip"

MALFORMED = ("malformed answers file", "malformed answers files")
NO_ID = ("answer without an id or row", "answers without an id or row")
BAD_ROW = ("unreadable row number", "unreadable row numbers")
BAD_ANSWER = ("answer value other than 'skip'", "answer values other than 'skip'")
MULTIPLE = ("answer with several classes", "answers with several classes")
BOTH = ("answer with both a label and skip", "answers with both a label and skip")
CONTROL = ("file without the label field", "files without the label field", "name it with --label-field")


@dataclass
class Answers:
    """One answers file, column by column: one entry per answer (record or annotation)."""

    name: str
    sha256: str = ""
    format: str = ""
    ids: list[str | None] = field(default_factory=list)  # as written, URL already resolved; None: no id
    rows: list[int | None] = field(default_factory=list)  # the row the answer names, if any
    labels: list[str | None] = field(default_factory=list)  # a class name; None: no label
    skips: list[bool] = field(default_factory=list)
    times: list[Any] = field(default_factory=list)  # when last updated, as written (parse_time); None: unknown

    def add(self, id_: str | None, row: int | None, label: str | None, skip: bool, time: Any = None) -> None:
        self.ids.append(id_)
        self.rows.append(row)
        self.labels.append(label)
        self.skips.append(skip)
        self.times.append(time)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Fields:
    """Which keys hold what; `--id-field`/`--label-field` override the defaults of each format."""

    id: str | None = None
    label: str | None = None


def read_answers(path: str, fmt: str = "auto", fields: Fields | None = None,
                 problems: Problems | None = None) -> Answers:
    """Parse one answers file or folder (`-` = stdin). Problems are added to `problems` (a file that
    cannot be read at all is one problem); the answers that could be read are returned."""
    fields = fields or Fields()
    problems = problems if problems is not None else Problems()
    name = "<stdin>" if path == "-" else path
    out = Answers(name)
    try:
        if path != "-" and os.path.isdir(path):
            out.format = "folder"
            if fmt not in ("auto", "folder"):
                raise _Malformed(f"is a folder, not a {fmt} file")
            _folder(path, out)
        else:
            if path == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(path, "rb") as fh:
                    raw = fh.read()
            out.sha256 = hashlib.sha256(raw).hexdigest()
            if fmt == "folder":
                raise _Malformed("is a file, not a folder")
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise _Malformed(f"not UTF-8 text (byte {exc.start})") from None
            was = gc.isenabled()
            gc.disable()  # millions of small containers: the cyclic collector's passes cost 3x the parse
            try:
                _parse_text(text, fmt, fields, out, problems)
            finally:
                if was:
                    gc.enable()
    except (OSError, _Malformed) as exc:
        why = f"cannot read ({exc.strerror or exc})" if isinstance(exc, OSError) else str(exc)
        problems.add(MALFORMED, f"{name}: {why}", name)
        return Answers(name, out.sha256, out.format)
    if not out.ids and name not in problems.sources:
        problems.add(MALFORMED, f"{name}: holds no answers", name)
    return out


class _Malformed(Exception):
    pass


# ------------------------------------------------------------------------------------------ detection


def _parse_text(text: str, fmt: str, fields: Fields, out: Answers, problems: Problems) -> None:
    head = text.lstrip()
    if not head:
        raise _Malformed("empty file")
    if fmt in ("csv", "label-studio-csv") or (fmt == "auto" and head[0] not in "[{"):
        records = _csv_records(text)
        header = next(records)[1]
        flavour = "ls" if fmt == "label-studio-csv" or (fmt == "auto" and _ls_keys(header)) else "alcli"
        wanted = [fields.id] if fields.id else ["alcli_id", "alcli_row", "image"] if flavour == "ls" else ["id", "row"]
        if not set(wanted) & set(header):
            raise _Malformed(f"no {' or '.join(map(repr, wanted))} column (columns: {', '.join(header)[:80]})")
        out.format = "label-studio-csv" if flavour == "ls" else "csv"
        _flat(records, flavour, fields, out, problems)
        return
    if fmt == "jsonl":
        out.format = "jsonl"
        _flat(_jsonl_records(text), "alcli", fields, out, problems)
        return
    try:
        doc = json.loads(text)
    except ValueError as exc:
        if fmt == "auto" and head[0] == "{":
            out.format = "jsonl"
            _flat(_jsonl_records(text), "alcli", fields, out, problems)
            return
        raise _Malformed(f"not valid JSON ({exc})") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not all(isinstance(item, dict) for item in doc):
        raise _Malformed("expected a JSON list of objects (tasks or records)")
    tasks = any(isinstance(item.get("data"), dict) or "annotations" in item or "completions" in item for item in doc)
    if fmt == "label-studio" or (fmt == "auto" and tasks):
        out.format = "label-studio"
        _tasks(doc, fields, out, problems)
        return
    flavour = "ls" if fmt == "label-studio-min" or (fmt == "auto" and any(_ls_keys(d) for d in doc)) else "alcli"
    out.format = "label-studio-min" if flavour == "ls" else "jsonl"
    _flat(((i + 1, rec) for i, rec in enumerate(doc)), flavour, fields, out, problems)


def _ls_keys(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return bool(keys & {"alcli_id", "alcli_row", "annotation_id", "choice"})


def _csv_records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record) for every data row; the first item is (1, header as a dict of names)."""
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise _Malformed(f"no CSV header ({exc})") from None
    yield 1, dict.fromkeys(header, "")
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):  # blank lines, a spreadsheet's empty rows
                continue
            if len(cells) > len(header):
                raise _Malformed(f"line {reader.line_num}: {len(cells)} fields, the header has {len(header)}")
            yield reader.line_num, dict(zip(header, cells, strict=False))
    except csv.Error as exc:
        raise _Malformed(f"line {reader.line_num}: {exc}") from None


def _jsonl_records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise _Malformed(f"line {number}: not valid JSON ({exc})") from None
        if not isinstance(rec, dict):
            raise _Malformed(f"line {number}: expected a JSON object")
        yield number, rec


# ---------------------------------------------------------------------------------------------- parsers


def _flat(records: Iterable[tuple[int, dict[str, Any]]], flavour: str, fields: Fields, out: Answers,
          problems: Problems) -> None:
    """alcli csv/jsonl records, or Label Studio JSON_MIN/CSV records (one per annotation)."""
    ls = flavour == "ls"
    id_key = fields.id or ("alcli_id" if ls else "id")
    row_key = "alcli_row" if ls else "row"
    label_key = fields.label or ("choice" if ls else "label")
    keys: set[str] = set()
    seen = False
    for line, rec in records:
        if not seen:
            seen = label_key in rec
            keys.update(rec)
        id_, row = _text(rec.get(id_key)), rec.get(row_key)
        if id_ is not None and id_key == "image":
            id_ = id_from_url(id_)
        if id_ is None and fields.id is None and _text(rec.get("image")) is not None:
            id_ = id_from_url(_text(rec.get("image")) or "")
        row = _row(row, out.name, line, problems)
        if id_ is None and row is None:
            problems.add(NO_ID, f"{out.name} line {line}" if not ls else f"{out.name} record {line}", out.name)
            continue
        label = _choice(rec.get(label_key), out.name, id_ or f"row {row}", problems)
        skip = False
        if not ls:
            answer = _text(rec.get("answer"))
            if answer is not None:
                skip = answer.strip().lower() == SKIP
                if not skip:
                    problems.add(BAD_ANSWER, repr(answer), out.name)
            if skip and label is not None:
                problems.add(BOTH, id_ or f"row {row}", out.name)
                continue
        when = (rec.get("updated_at") or rec.get("created_at")) if ls else None
        out.add(id_, row, label, skip, when)
    if out.ids and not seen and (ls or fields.label):
        other = sorted(keys - {id_key, row_key, "image", "id", "annotator", "annotation_id", "created_at", "updated_at",
                               "lead_time", "alcli_rank"})
        problems.add(CONTROL, f"{out.name}: no {label_key!r} key (others: {', '.join(other)[:60]})", out.name)


def _tasks(tasks: list[dict[str, Any]], fields: Fields, out: Answers, problems: Problems) -> None:
    """Label Studio JSON: each non-cancelled annotation is an answer, each cancelled one a skip, a task
    without annotations a pending answer."""
    label_key = fields.label or "choice"
    controls: set[str] = set()
    for number, task in enumerate(tasks, 1):
        data = task.get("data")
        if not isinstance(data, dict):
            problems.add(MALFORMED, f"{out.name}: task {number} has no 'data' object", out.name)
            continue
        if fields.id:
            id_ = _text(data.get(fields.id))
            id_ = id_from_url(id_) if id_ is not None and fields.id == "image" else id_
        else:
            id_ = _text(data.get("alcli_id"))
            image = _text(data.get("image"))
            id_ = id_ if id_ is not None or image is None else id_from_url(image)
        row = _row(data.get("alcli_row"), out.name, number, problems)
        if id_ is None and row is None:
            problems.add(NO_ID, f"{out.name} task {number}", out.name)
            continue
        what = id_ or f"row {row}"
        annotations = task.get("annotations", task.get("completions")) or []
        if not isinstance(annotations, list) or not annotations:
            out.add(id_, row, None, False)
            continue
        for ann in annotations:
            if not isinstance(ann, dict):
                problems.add(MALFORMED, f"{out.name}: task {number} has an annotation that is not an object",
                             out.name)
                continue
            when = ann.get("updated_at") or ann.get("created_at")
            if ann.get("was_cancelled") or ann.get("skipped"):
                out.add(id_, row, None, True, when)
                continue
            names: list[str] = []
            for res in ann.get("result") or []:
                if isinstance(res, dict) and res.get("from_name") == label_key:
                    value = res.get("value") if isinstance(res.get("value"), dict) else {}
                    picked = value.get("choices") or []
                    names += [str(c) for c in (picked if isinstance(picked, list) else [picked])]
                elif isinstance(res, dict) and res.get("type") == "choices":
                    controls.add(str(res.get("from_name")))
            label = names[0].strip() or None if len(names) == 1 else _choice(names, out.name, what, problems)
            out.add(id_, row, label, False, when)
    if controls and not any(label is not None for label in out.labels):
        problems.add(CONTROL, f"{out.name}: no {label_key!r} choices (found {', '.join(sorted(controls))[:60]})",
                     out.name)


def _folder(path: str, out: Answers) -> None:
    from alcli.images.folder import EXTENSIONS

    listing = []
    for cls in sorted(os.listdir(path)):
        top = os.path.join(path, cls)
        if cls.startswith(".") or not os.path.isdir(top):
            continue
        for root, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or not name.lower().endswith(EXTENSIONS):
                    continue
                rel = os.path.relpath(os.path.join(root, name), top).replace(os.sep, "/")
                listing.append(f"{cls}/{rel}")
                out.add(rel, None, cls, False)
    out.sha256 = hashlib.sha256("\n".join(listing).encode("utf-8", "surrogateescape")).hexdigest()


# --------------------------------------------------------------------------------------------- values


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def _row(value: Any, name: str, where: int, problems: Problems) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        value = value.strip()
        if value.isascii() and value.isdigit():
            return int(value)
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, int) else value
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        problems.add(BAD_ROW, f"{name} record {where}: {str(value)[:30]!r}", name)
        return None


def _choice(value: Any, name: str, what: str, problems: Problems) -> str | None:
    """A class name from a label cell: a name, Label Studio's `{"choices": [...]}` (as an object or as
    JSON text) or a list of either; several different names are a problem."""
    if isinstance(value, str):
        text = value.strip()
        if text and text[0] in "[{" and text[-1] in "]}":
            try:
                value = json.loads(text)
            except ValueError:
                return text
        else:
            return text or None
    names: list[str] = []
    _collect(value, names)
    distinct = list(dict.fromkeys(n for n in names if n))
    if len(distinct) > 1:
        problems.add(MULTIPLE, f"{what}: {'/'.join(distinct[:3])}", name)
        return None
    return distinct[0] if distinct else None


def _collect(value: Any, names: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        _collect(value.get("choices"), names)
    elif isinstance(value, list):
        for item in value:
            _collect(item, names)
    else:
        names.append(_text(value) or "")
