"""`alcli.labeled`: a set of labelled row indices into a data set (the pool), with provenance.

Datasets: `indices` int64 (sorted, unique, in [0, pool_size)), `round` int32 (the round each index
joined), `last_picks` int64 (the newest round's picks in the order the method chose them) and
`last_scores` float64 (why each was picked: the method's score, named by attr score_name).
Attrs: pool_size, method, budget, seed, radius_before, radius_after, seconds, report (JSON, per method),
plus the common format/version/alcli_version/created_at/parents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alcli.artifacts.io import Input, attrs_dict, check_format, open_input, pool_size_attr, read_array
from alcli.artifacts.output import create_output, stamp

KIND = "labeled"
_RESERVED = {"format", "version", "alcli_version", "created_at", "parents", "pool_size", "report"}


@dataclass
class LabeledSet:
    indices: np.ndarray
    rounds: np.ndarray
    pool_size: int
    last_picks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    attrs: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    name: str = ""

    @property
    def next_round(self) -> int:
        return int(self.rounds.max()) + 1 if self.rounds.size else 0

    @classmethod
    def empty(cls, pool_size: int) -> LabeledSet:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), pool_size)


def validate_indices(src: Input, name: str, indices: np.ndarray, pool_size: int) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size:
        if indices.min() < 0 or indices.max() >= pool_size:
            bad = indices[(indices < 0) | (indices >= pool_size)][0]
            raise src.fail(f"'{name}' holds index {int(bad)} outside the pool [0, {pool_size})")
        if np.any(np.diff(indices) <= 0):
            uniq, counts = np.unique(indices, return_counts=True)
            if np.any(counts > 1):
                raise src.fail(f"'{name}' holds index {int(uniq[counts > 1][0])} more than once")
            raise src.fail(f"'{name}' is not sorted ascending")
    return indices


def labeled_of(rows: Any, pool_size: int, name: str = "labeled") -> LabeledSet:
    """Data-set rows in any order (an index array) as a labelled set of one round 0, checked as a file's
    'indices' are (integers, in the pool, each once); messages name `name`."""
    src = Input.named(name)
    arr = np.asarray(rows)
    if arr.size == 0:
        return LabeledSet.empty(pool_size)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise src.fail(f"'indices' must be a 1-D array of integers, got {arr.dtype} with shape {arr.shape}")
    indices = validate_indices(src, "indices", np.sort(arr), pool_size)
    return LabeledSet(indices, np.zeros(indices.size, np.int32), pool_size, name=name)


def read_labeled(path: str) -> LabeledSet:
    with open_input(path) as src:
        return labeled_from(src)


def labeled_from(src: Input) -> LabeledSet:
    check_format(src, KIND)
    attrs = attrs_dict(src)
    pool_size = pool_size_attr(src, attrs)
    indices = validate_indices(src, "indices", read_array(src, "indices", kinds="iu", ndim=(1,)), pool_size)
    rounds = read_array(src, "round", kinds="iu", ndim=(1,))
    if rounds.shape != indices.shape:
        raise src.fail(f"'round' has {rounds.size} entries for {indices.size} indices")
    top = np.iinfo(np.int32).max - 1  # the next round must fit the int32 it is stored as
    if rounds.size and (rounds.min() < 0 or rounds.max() > top):
        bad = rounds[(rounds < 0) | (rounds > top)][0]
        raise src.fail(f"'round' holds {bad}, outside [0, {top}]")
    last = read_array(src, "last_picks", kinds="iu", ndim=(1,), required=False)
    last = np.zeros(0, np.int64) if last is None else last.astype(np.int64)
    if last.size and (last.min() < 0 or last.max() >= pool_size):
        bad = last[(last < 0) | (last >= pool_size)][0]
        raise src.fail(f"'last_picks' holds row {int(bad)} outside the pool [0, {pool_size})")
    scores = read_array(src, "last_scores", kinds="f", ndim=(1,), required=False)
    scores = np.zeros(0, np.float64) if scores is None else scores.astype(np.float64)
    try:
        report = json.loads(attrs.get("report", "{}") or "{}")
    except ValueError:
        raise src.fail("attr 'report' is not valid JSON") from None
    extra = {k: v for k, v in attrs.items() if k not in _RESERVED}
    return LabeledSet(indices, rounds.astype(np.int32), pool_size, last, scores, extra, report, src.sha256, src.name)


def write_labeled(path: str, labeled: LabeledSet, parents: dict[str, str] | None = None) -> None:
    with create_output(path) as out:
        stamp(out, KIND, parents=parents)
        out.attrs["pool_size"] = int(labeled.pool_size)
        for key, value in labeled.attrs.items():
            if key in _RESERVED:
                continue
            out.attrs[key] = "" if value is None else value
        out.attrs["report"] = report_json(labeled.report)
        out.create_dataset("indices", data=np.asarray(labeled.indices, np.int64))
        out.create_dataset("round", data=np.asarray(labeled.rounds, np.int32))
        out.create_dataset("last_picks", data=np.asarray(labeled.last_picks, np.int64))
        out.create_dataset("last_scores", data=np.asarray(labeled.last_scores, np.float64))


def report_json(report: dict[str, Any]) -> str:
    """The `report` attr's text (numpy values as plain JSON)."""
    return json.dumps(report, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def add_round(labeled: LabeledSet, picks: np.ndarray) -> LabeledSet:
    """Old indices plus the new picks, each new index marked with the next round number."""
    picks = np.asarray(picks, np.int64)
    rnd = labeled.next_round
    indices = np.concatenate([labeled.indices, picks])
    rounds = np.concatenate([labeled.rounds, np.full(picks.size, rnd, np.int32)])
    order = np.argsort(indices, kind="stable")
    return LabeledSet(indices[order], rounds[order], labeled.pool_size, picks)
