"""The public Python API: `select`, `read`, `write`, `covering_radius` (re-exported lazily by `alcli`).

Each call goes through the code `alcli select` runs (`alcli.selection.run.select_round`, the artifact
readers and writers, the out-of-core reader and the Dask runner), so a call and the command give the same
picks, scores, checks and messages. An AlcliError here names the keyword at fault (`budget`, `labeled`,
`outliers`) where the command names its option (`--budget`, ...).

    >>> import numpy as np, alcli
    >>> x = np.random.default_rng(0).normal(size=(1000, 64)).astype(np.float32)
    >>> sel = alcli.select(x, budget=10)                      # k-Center from an empty labelled set
    >>> nxt = alcli.select(x, labeled=sel.picks, budget=10)   # the next round
    >>> nxt.radius_after <= nxt.radius_before
    True
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import h5py
import numpy as np
import numpy.typing as npt

from alcli import console
from alcli.artifacts import Embeddings, LabeledSet
from alcli.artifacts.embeddings import OPTIONAL, attach_optional, embeddings_of
from alcli.artifacts.io import Input, check_dataset
from alcli.artifacts.kinds import Artifact, read_any, write_any
from alcli.artifacts.labeled import labeled_of, report_json
from alcli.errors import AlcliError
from alcli.kcenter.greedy import covering_radius as _covering_radius
from alcli.scale.distributed import select_runner
from alcli.scale.outofcore import page_budget_for, read_embeddings, resolve_memory_limit, store_from_dataset
from alcli.selection.base import Strategy
from alcli.selection.run import Round, get_strategy, resolve_params, select_round

__all__ = ["AlcliError", "Selection", "covering_radius", "read", "select", "write"]

Features: TypeAlias = npt.ArrayLike | h5py.Dataset | Embeddings | str | os.PathLike[str]


@dataclass(frozen=True)
class Selection:
    """One round's answer, as `alcli select` writes it.

    picks: data-set rows (pool rows for an array) in the order chosen, int64.
    scores: per pick, the score that chose it (float64; named by `score_name`), as the artifact's last_scores.
    radius_before, radius_after: the k-Center covering radius (l2) of the labelled set before and after the
        round, for the covering methods (None otherwise, or with no labelled points before).
    report: the labelled artifact's `report` attr: {"params": the method's options, ...method-specific}.
    summary: the JSON line `alcli select --json` prints (method, picked, labeled_before/after, radii, round, ...).
    labeled: the labelled set after the round (old ∪ picks): `alcli.write("l1.h5", sel)` writes it.
    """

    picks: np.ndarray
    scores: np.ndarray
    score_name: str
    radius_before: float | None
    radius_after: float | None
    report: dict[str, Any]
    summary: dict[str, Any]
    labeled: LabeledSet

    @classmethod
    def of(cls, rnd: Round) -> Selection:
        picks = np.array(rnd.picks_rows, np.int64)
        scores = np.array(rnd.labeled.last_scores, np.float64)
        picks.flags.writeable = scores.flags.writeable = False
        report = json.loads(report_json(rnd.labeled.report))  # as read back from the artifact
        return cls(picks, scores, rnd.result.why_name, rnd.result.radius_before, rnd.result.radius_after, report,
                   console.as_json(rnd.summary()), rnd.labeled)


def select(
    features: Features,
    *,
    budget: int,
    labeled: npt.ArrayLike | LabeledSet | None = None,
    method: str = "kcenter",
    seed: int = 0,
    probs: npt.ArrayLike | None = None,
    mc_probs: npt.ArrayLike | None = None,
    grad_features: npt.ArrayLike | None = None,
    labels: npt.ArrayLike | None = None,
    exclude: npt.ArrayLike | None = None,
    radius: bool | None = None,
    memory_limit: int | str | None = None,
    scheduler: str | None = None,
    distributed_mode: str = "exact",
    **params: Any,
) -> Selection:
    """Pick the next `budget` points to label, as `alcli select` does.

    features: N×D numbers (numpy, float32/float64, any order, np.load(mmap_mode="r") too), an h5py dataset,
        Embeddings (from `alcli.read`), or the path of an embeddings .h5 / .npy file (its probs, mc_probs
        and grad_features are read as the command reads them).
    labeled: rows already labelled (an index array in any order, or a LabeledSet); None = none yet.
    method: any strategy of `alcli select --help`; its options by the command's names with `_`
        (`alcli.select(x, budget=5, method="kcenter-robust", outliers=3, gap=0.05, time_limit=60)`).
    probs (N×C), mc_probs (T×N×C), grad_features (N×G): model outputs the method needs.
    labels: every row's true label (-1 unknown), for oracle-uncertainty. exclude: rows never picked nor counted.
    radius: also compute the covering radius for methods that do not report it.
    memory_limit: bytes or "2G": keep the features on disk (features given as a path or an h5py dataset;
        kcenter, random). scheduler: "local:N" or "tcp://HOST:PORT" runs kcenter on Dask (`distributed_mode`
        "exact" or "two-round"), as `--scheduler`.

    >>> sel = alcli.select(x, labeled=[3, 17], budget=5, method="entropy", probs=p)
    >>> sel.picks, sel.scores, sel.report["params"]
    """
    with _keywords():
        strat = get_strategy(method)
        options = resolve_params(strat, params)
        _check_int(budget, "--budget")
        _check_int(seed, "--seed")
        arrays = {"probs": probs, "mc_probs": mc_probs, "grad_features": grad_features}
        emb = _embeddings(features, strat, memory_limit, bool(scheduler))
        attach_optional(emb, **{k: v for k, v in arrays.items() if k in strat.loads})
        if isinstance(labeled, LabeledSet):
            start = labeled
        else:
            start = labeled_of([] if labeled is None else labeled, emb.pool_size, "--labeled")
        rows = None if exclude is None else labeled_of(exclude, emb.pool_size, "--exclude").indices
        truth = None if labels is None else _labels(labels)
        with select_runner(scheduler, distributed_mode, strat.name) as runner:
            rnd = select_round(emb, start, method, int(budget), seed=int(seed), exclude=rows, labels=truth,
                               params=options, radius=radius, runner=runner)
    return Selection.of(rnd)


def read(path: str | os.PathLike[str]) -> Artifact:
    """The artifact at `path` (an alcli .h5 of any kind, found from its `format` attr; a plain features
    .h5/.npy as Embeddings; plain images/labels as a Dataset), read and checked as the commands read it.

    >>> emb = alcli.read("emb.h5")            # Embeddings: .features, .indices, .probs, ...
    >>> lab = alcli.read("l1.h5")             # LabeledSet: .indices, .rounds, .last_picks, .report
    """
    return read_any(os.fspath(path), expected=_expected_tensors)


def write(path: str | os.PathLike[str], artifact: Artifact | Selection, *,
          parents: dict[str, str] | None = None) -> None:
    """Write an artifact (Dataset, LabeledSet, Embeddings, Checkpoint, Report, Coords; a Selection writes its
    labelled set) atomically and sealed, as the commands do; `-` is stdout.

    >>> alcli.write("l1.h5", alcli.select(x, budget=10))      # `alcli select ... -o l1.h5`
    """
    value = artifact.labeled if isinstance(artifact, Selection) else artifact
    write_any(os.fspath(path), value, parents)


def covering_radius(features: npt.ArrayLike | h5py.Dataset, centers: npt.ArrayLike) -> float | None:
    """max over the rows of `features` of the l2 distance to the nearest center (rows `centers`); None
    with no centers. The radius `select` reports, computed the same way (exact, float64 distances).

    >>> alcli.covering_radius(x, sel.picks)
    """
    with _keywords():
        emb = embeddings_of(features, "features")
        rows = labeled_of(centers, emb.n, "--centers").indices
    return _covering_radius(emb.features, rows, np.arange(emb.n))


def _embeddings(features: Features, strat: Strategy, memory_limit: int | str | None, distributed: bool) -> Embeddings:
    if isinstance(features, Embeddings):
        if memory_limit is not None:
            raise AlcliError("keeps features given as a path (.h5, .npy) or an h5py dataset on disk", "--memory-limit")
        return features
    if isinstance(features, (str, os.PathLike)):
        path = os.fspath(features)
        limit = resolve_memory_limit(memory_limit, path, strat.name, distributed=distributed)
        return read_embeddings(path, load=tuple(n for n in OPTIONAL if n in strat.loads), memory_limit=limit)
    if isinstance(features, h5py.Dataset):
        name = f"{features.file.filename}:{features.name}"
        limit = resolve_memory_limit(memory_limit, features.file.filename, strat.name, distributed=distributed)
        if limit is None:
            return embeddings_of(features, name)
        src = Input.named(name)
        check_dataset(src, "features", features, kinds="fiu", ndim=(2,))
        if 0 in features.shape:
            raise src.fail(f"'features' is empty (shape {features.shape})")
        store = store_from_dataset(features, features.file.filename, name, page_budget_for(limit, features.shape[0]))
        return embeddings_of(features, name, store=store)
    if memory_limit is not None:
        raise AlcliError("keeps features given as a path (.h5, .npy) or an h5py dataset on disk; "
                         "an array is already in memory", "--memory-limit")
    return embeddings_of(features, "features")


def _labels(labels: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise AlcliError(f"must be a 1-D array of integer labels (-1 unknown), got {arr.dtype} with shape "
                         f"{arr.shape}", "--labels")
    if arr.size and arr.min() < -1:
        raise AlcliError(f"holds {int(arr.min())}, outside -1 (unlabelled) and the classes", "--labels")
    return arr.astype(np.int64)


def _check_int(value: Any, source: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise AlcliError(f"{value!r} is not a valid integer", source)


def _expected_tensors(arch: str, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    from alcli.learn import models  # torch: only for a checkpoint

    return models.expected_tensors(arch, input_shape, num_classes)


@contextlib.contextmanager
def _keywords() -> Iterator[None]:
    """The command's option names in messages (`--memory-limit`) become this API's keywords (`memory_limit`)."""
    try:
        yield
    except AlcliError as exc:
        if exc.source and exc.source.startswith("--"):
            exc.source = exc.source[2:].replace("-", "_")
        raise
