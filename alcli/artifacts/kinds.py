"""Any artifact by its kind: `read_any` finds the kind in the file's `format` attr (plain HDF5 features or
images, and .npy matrices, as the commands accept them), `write_any` by the object's type. Each kind's own
reader and writer do the work, so validation and sealing are the commands'."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from alcli.artifacts import checkpoint, coords, dataset, embeddings, labeled, report
from alcli.artifacts.checkpoint import Checkpoint, Expected
from alcli.artifacts.coords import Coords
from alcli.artifacts.dataset import Dataset
from alcli.artifacts.embeddings import Embeddings
from alcli.artifacts.io import format_of, open_input
from alcli.artifacts.labeled import LabeledSet
from alcli.artifacts.output import FORMAT_PREFIX, check_output
from alcli.artifacts.report import Report
from alcli.errors import AlcliError

Artifact: TypeAlias = Dataset | LabeledSet | Embeddings | Checkpoint | Report | Coords
KINDS = ("dataset", "labeled", "embeddings", "checkpoint", "report", "coords")


def read_any(path: str, expected: Callable[[str, tuple[int, int, int], int], Expected] | None = None) -> Artifact:
    """The artifact at `path`, read and checked by its kind's reader. `expected(arch, input_shape,
    num_classes)` names a checkpoint's tensors (alcli.learn.models.expected_tensors); only checkpoints need it."""
    if path.endswith(".npy"):
        return embeddings.read_npy(path)
    with open_input(path) as src:
        fmt = format_of(src)
        kind = fmt.removeprefix(FORMAT_PREFIX) if fmt else _plain_kind(src.file)
        if kind == "dataset":
            return dataset.dataset_from(src)
        if kind == "labeled":
            return labeled.labeled_from(src)
        if kind == "embeddings":
            return embeddings.embeddings_from(src)
        if kind == "checkpoint":
            if expected is None:
                raise src.fail("a checkpoint needs the model's tensor names to be checked (internal error)")
            return checkpoint.checkpoint_from(src, expected)
        if kind == "report":
            return report.report_from(src)
        if kind == "coords":
            return coords.coords_from(src)
        raise src.fail(f"is a {fmt!r} artifact, which this alcli does not know (it reads {', '.join(KINDS)})")


def _plain_kind(file: Any) -> str:
    """A file with no `format` attr: features → embeddings, images → a data set (as the commands take them)."""
    if "features" in file:
        return "embeddings"
    if "images" in file:
        return "dataset"
    raise AlcliError("missing 'format' attr and neither 'features' nor 'images': not an alcli artifact",
                     file.filename)


def write_any(path: str, artifact: Artifact, parents: dict[str, str] | None = None) -> None:
    """Write `artifact` to `path` (atomically, sealed; `-` is stdout) with its kind's writer."""
    check_output(path)
    if isinstance(artifact, Dataset):
        dataset.write_dataset(path, artifact, parents)
    elif isinstance(artifact, LabeledSet):
        labeled.write_labeled(path, artifact, parents)
    elif isinstance(artifact, Embeddings):
        embeddings.write_embeddings(path, artifact, parents)
    elif isinstance(artifact, Coords):
        coords.write_coords(path, artifact, parents)
    elif isinstance(artifact, Checkpoint):
        checkpoint.write_checkpoint(path, _with_parents(artifact, parents))
    elif isinstance(artifact, Report):
        report.write_report(path, _with_parents(artifact, parents))
    else:
        raise AlcliError(f"cannot write a {type(artifact).__name__}: not an alcli artifact "
                         f"({', '.join(KINDS)})", path)


def _with_parents(artifact: Any, parents: dict[str, str] | None) -> Any:
    if parents is None:
        return artifact
    import dataclasses

    return dataclasses.replace(artifact, parents=dict(parents))
