"""Merging annotators' answers into a data set: matching ids, class names, conflicts, partial batches.

Rules (`alcli label`):
- An answer's id matches DATA's `ids` as written, else after normalising (URL-decoded, `\\` → `/`,
  `--strip-prefix` removed), else as the tail of exactly one DATA id (so a bare file name matches when it
  is unique; otherwise the candidates are listed). A row given with the id must agree with it; a row
  alone is used as it is.
- Class names must be DATA's `class_names` (plus `--classes`, which sets them when DATA has none and
  appends new ones otherwise).
- Several answers for one row: identical labels count once; different labels are a conflict unless
  `--resolve majority` (most answers; a tie goes to the latest) or `--resolve latest`. Latest = the
  newest `updated_at` (else `created_at`) when every answer for that row carries one (Label Studio),
  otherwise the last one read (files in command-line order, records in file order).
- `skip` answers (and cancelled Label Studio annotations) are not labels: a row is skipped when all its
  answers are skips. A row labelled in DATA with a different class is a conflict unless `--relabel`;
  the same class again changes nothing, so re-running is a no-op.
- Rows that get a new label are stamped `label_round` = 1 + the largest round already in DATA.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from alcli.artifacts.dataset import Dataset
from alcli.artifacts.labeled import LabeledSet
from alcli.errors import AlcliError
from alcli.labelling.answers import Answers
from alcli.labelling.ids import normalise, parse_time, strip
from alcli.problems import Problems

RESOLVE = ("majority", "latest")
UNKNOWN_ID = ("unknown id", "unknown ids")
AMBIGUOUS = ("ambiguous id", "ambiguous ids")
BAD_ROW = ("row outside the data set", "rows outside the data set")
DISAGREE = ("id and row that disagree", "ids and rows that disagree")
UNKNOWN_CLASS = ("unknown class name", "unknown class names")
CONFLICT = ("row with disagreeing answers", "rows with disagreeing answers", "use --resolve majority|latest")
RELABEL = ("row already labelled with another class", "rows already labelled with another class", "use --relabel")
_SKIP, _NONE = -2, -1


@dataclass
class Merged:
    """The outcome of a merge: DATA's new labels and rounds, and what happened to each row."""

    labels: np.ndarray
    label_round: np.ndarray
    class_names: list[str]
    added_classes: list[str]
    round: int
    skipped: np.ndarray  # rows whose answers were all skips and that stay unlabelled
    pending: np.ndarray  # rows answered without a label (or picked in --labeled) that stay unlabelled
    counts: dict[str, int] = field(default_factory=dict)


def class_names(current: list[str], option: str | None) -> tuple[list[str], list[str]]:
    """DATA's class names extended by `--classes` (a,b,c or a file with one name a line): (names, added)."""
    if not option:
        return list(current), []
    if os.path.isfile(option):
        try:
            with open(option, encoding="utf-8-sig") as fh:
                given = [line.strip() for line in fh if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise AlcliError(f"cannot read class names from {option} ({exc})", "--classes") from None
    else:
        given = [name.strip() for name in option.split(",") if name.strip()]
    if not given:
        raise AlcliError(f"no class names in {option!r}", "--classes")
    repeated = [name for name, n in Counter(given).items() if n > 1]
    if repeated:
        raise AlcliError(f"class name {repeated[0]!r} is given more than once", "--classes")
    added = [name for name in given if name not in current]
    return list(current) + added, added


def check_unique_ids(data: Dataset) -> None:
    ids = data.row_ids()
    if len(set(ids)) != len(ids):
        dup = [f"{k!r} ×{n}" for k, n in Counter(ids).most_common(3) if n > 1]
        raise AlcliError(f"'ids' are not unique ({', '.join(dup)}): answers cannot be matched to rows", data.name)


class IdIndex:
    """DATA's ids → rows, built once: exact look-ups, then unique path tails (built when first needed)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.exact = {key: row for row, key in enumerate(ids)}
        self._tails: dict[str, list[int]] | None = None

    def find(self, raw: str, strip_prefix: str = "") -> int | list[str]:
        """The row of `raw`, or the list of candidate ids (empty: unknown; several: ambiguous)."""
        key = strip(raw, strip_prefix)
        row = self.exact.get(key)
        if row is not None:
            return row
        key = normalise(raw, strip_prefix)
        row = self.exact.get(key)
        if row is not None:
            return row
        if self._tails is None:
            self._tails = {}
            for r, full in enumerate(self.ids):
                parts = full.replace("\\", "/").split("/")
                for k in range(1, len(parts)):
                    self._tails.setdefault("/".join(parts[k:]), []).append(r)
        rows = self._tails.get(key, [])
        if len(rows) == 1:
            return rows[0]
        return [self.ids[r] for r in rows]


def match(answers: list[Answers], data: Dataset, index: IdIndex, strip_prefix: str,
          problems: Problems) -> np.ndarray:
    """The DATA row of every answer, files concatenated (-1 where it cannot be matched: a problem)."""
    rows = np.full(sum(len(a) for a in answers), -1, np.int64)
    n = data.n
    k = 0
    for ans in answers:
        hits = [index.exact.get(id_) for id_ in ans.ids] if not strip_prefix else [None] * len(ans)
        for id_, given, hit in zip(ans.ids, ans.rows, hits, strict=True):
            if hit is not None and (given is None or given == hit):
                rows[k] = hit
            elif id_ is not None:
                found = index.find(id_, strip_prefix)
                if isinstance(found, list):
                    if found:
                        problems.add(AMBIGUOUS, f"{id_} → {' | '.join(found[:3])}", ans.name)
                    else:
                        problems.add(UNKNOWN_ID, id_, ans.name)
                elif given is not None and given != found:
                    problems.add(DISAGREE, f"{id_} is row {found}, the answer says {given}", ans.name)
                else:
                    rows[k] = found
            elif given is not None and not 0 <= given < n:
                problems.add(BAD_ROW, f"{given} of {n}", ans.name)
            else:
                rows[k] = given
            k += 1
    return rows


def codes(answers: list[Answers], names: list[str], problems: Problems) -> np.ndarray:
    """Each answer as a class index, -1 for no label, -2 for skip (unknown names: a problem, -3)."""
    lookup = {name: c for c, name in enumerate(names)}
    out = np.empty(sum(len(a) for a in answers), np.int64)
    k = 0
    for ans in answers:
        unknown: Counter[str] = Counter()
        for label, skip in zip(ans.labels, ans.skips, strict=True):
            if skip:
                out[k] = _SKIP
            elif label is None:
                out[k] = _NONE
            else:
                code = lookup.get(label)
                if code is None:
                    unknown[label] += 1
                    code = -3
                out[k] = code
            k += 1
        for label, count in unknown.items():
            problems.add(UNKNOWN_CLASS, label if count == 1 else f"{label} ×{count}", ans.name)
    return out


def merge(data: Dataset, answers: list[Answers], *, classes: str | None = None, relabel: bool = False,
          resolve: str | None = None, strip_prefix: str = "", picks: np.ndarray | None = None,
          problems: Problems | None = None) -> Merged:
    """Check every answer and merge them into DATA's labels. Raises one AlcliError listing every
    problem (first examples of each kind) before anything changes."""
    problems = problems if problems is not None else Problems()
    names, added = class_names(data.class_names, classes)
    if not names and any(label is not None for a in answers for label in a.labels):
        raise AlcliError("has no class names (e.g. packed --unlabelled): pass --classes a,b,c or --classes FILE",
                         data.name)
    rows = match(answers, data, IdIndex(data.row_ids()), strip_prefix, problems)
    code = codes(answers, names, problems)
    ok = (rows >= 0) & (code >= _SKIP)
    chosen_rows, chosen, rejected = _resolve(rows[ok & (code >= 0)], code[ok & (code >= 0)],
                                             _times(answers, ok & (code >= 0), rows), resolve, data, names, problems)
    old = data.labels[chosen_rows]
    changed = (old >= 0) & (old != chosen)
    if changed.any() and not relabel:
        for r, was, now in zip(chosen_rows[changed][:10], old[changed][:10], chosen[changed][:10], strict=True):
            problems.add(RELABEL, f"{_name(data, r)}: {names[was]} → {names[now]}")
        if changed.sum() > 10:
            problems.add(RELABEL, "", count=int(changed.sum()) - 10)
    if problems:
        raise AlcliError(problems.message(), problems.source() or ", ".join(a.name for a in answers[:3]))
    labels = data.labels.copy()
    labels[chosen_rows] = chosen
    rounds = data.label_rounds().copy()
    this_round = int(rounds.max()) + 1 if rounds.size else 0
    new_or_changed = chosen_rows[old != chosen]
    rounds[new_or_changed] = this_round
    skip_rows = np.setdiff1d(rows[ok & (code == _SKIP)], chosen_rows)
    skipped = skip_rows[labels[skip_rows] < 0]
    empty_rows = np.setdiff1d(rows[ok & (code == _NONE)], np.concatenate([chosen_rows, skip_rows]))
    if picks is not None:
        empty_rows = np.union1d(empty_rows, np.setdiff1d(picks, skip_rows))
    pending = empty_rows[labels[empty_rows] < 0]
    counts = {
        "answers": int(rows.size), "new": int(np.sum(old < 0)), "unchanged": int(np.sum(old == chosen))
        + int(np.sum(labels[skip_rows] >= 0)), "relabelled": int(changed.sum()), "skipped": int(skipped.size),
        "pending": int(pending.size), "rejected": rejected,
    }  # fmt: skip
    return Merged(labels, rounds, names, added, this_round, skipped, pending, counts)


def _times(answers: list[Answers], use: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """When each used answer was last updated (NaN: unknown), parsed only for rows answered more than
    once (the only place it matters)."""
    picked = np.flatnonzero(use)
    times = np.full(picked.size, np.nan)
    _, inverse, counts = np.unique(rows[picked], return_inverse=True, return_counts=True)
    several = np.flatnonzero(counts[inverse] > 1)
    if several.size:
        raw = [t for a in answers for t in a.times]
        times[several] = [parse_time(raw[i]) for i in picked[several]]
    return times


def _resolve(rows: np.ndarray, code: np.ndarray, times: np.ndarray, resolve: str | None, data: Dataset,
             names: list[str], problems: Problems) -> tuple[np.ndarray, np.ndarray, int]:
    """One class per row from the label answers (rows, codes, times in reading order): (rows sorted,
    their class, how many answers were overruled)."""
    m = rows.size
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    position = np.arange(m)
    untimed = np.unique(rows[np.isnan(times)])
    key = np.where(np.isin(rows, untimed), 0.0, np.nan_to_num(times))
    order = np.lexsort((position, key, rows))  # by row, then age: the last of a row is its latest answer
    rank = np.empty(m, np.int64)
    rank[order] = position
    by_pair = np.lexsort((rank, code, rows))
    r, c, rk = rows[by_pair], code[by_pair], rank[by_pair]
    first = np.flatnonzero(np.r_[True, (r[1:] != r[:-1]) | (c[1:] != c[:-1])])
    count = np.diff(np.r_[first, m])
    latest = rk[np.r_[first[1:], m] - 1]
    pair_row, pair_code = r[first], c[first]
    row_first = np.flatnonzero(np.r_[True, pair_row[1:] != pair_row[:-1]])
    pairs_per_row = np.diff(np.r_[row_first, pair_row.size])
    answers_per_row = np.add.reduceat(count, row_first)
    if resolve is None and np.any(pairs_per_row > 1):
        for i in np.flatnonzero(pairs_per_row > 1)[:10]:
            lo, hi = row_first[i], row_first[i] + pairs_per_row[i]
            votes = ", ".join(f"{names[pc]}×{n}" for pc, n in zip(pair_code[lo:hi], count[lo:hi], strict=True))
            problems.add(CONFLICT, f"{_name(data, int(pair_row[lo]))}: {votes}")
        extra = int(np.sum(pairs_per_row > 1)) - min(10, int(np.sum(pairs_per_row > 1)))
        if extra:
            problems.add(CONFLICT, "", count=extra)
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    weight = count if resolve == "majority" else np.zeros_like(count)
    best = np.lexsort((latest, weight, pair_row))
    last_of_row = best[np.r_[row_first[1:], pair_row.size] - 1]
    chosen_rows, chosen = pair_row[last_of_row], pair_code[last_of_row]
    rejected = int(np.sum(answers_per_row - count[last_of_row]))
    return chosen_rows, chosen, rejected


def _name(data: Dataset, row: int) -> str:
    return data.ids[row] if data.ids is not None else f"row {row}"


def without_pending(labeled: LabeledSet, labels: np.ndarray) -> LabeledSet:
    """The labelled set minus its rows that still have no label (so `train` accepts it); round info,
    pick order, scores and attrs are kept for the rows that stay."""
    keep = labels[labeled.indices] >= 0
    picks = labeled.last_picks
    keep_picks = labels[picks] >= 0 if picks.size else np.zeros(0, bool)
    scores = labeled.last_scores[keep_picks] if labeled.last_scores.size == picks.size else labeled.last_scores
    attrs = dict(labeled.attrs)
    attrs["pending_removed"] = int((~keep).sum())
    return LabeledSet(labeled.indices[keep], labeled.rounds[keep], labeled.pool_size, picks[keep_picks], scores,
                      attrs, dict(labeled.report))


def skipped_set(rows: np.ndarray, pool_size: int, this_round: int) -> LabeledSet:
    """Skipped rows as an alcli.labeled artifact, for `select --exclude`."""
    rows = np.sort(np.asarray(rows, np.int64))
    out = LabeledSet(rows, np.full(rows.size, max(this_round, 0), np.int32), pool_size, rows,
                     np.zeros(rows.size, np.float64))
    out.attrs = {"method": "label-skipped"}
    return out
