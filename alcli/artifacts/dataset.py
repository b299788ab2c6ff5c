"""`alcli.dataset`: the image pool.

Datasets: `images` uint8 N×H×W (grey) or N×H×W×C (C in 1, 3), `labels` int64 N with -1 for "not
labelled yet", optional `ids` strings N (e.g. relative file paths), optional `label_round` int32 N (the
`alcli label` round that set each row's label; -1 = never, e.g. labels from `pack`; files without it read
as all -1). Attrs: class_names, source.
The plain files in ../shared/data (images/labels, no `format` attr) are accepted as data sets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from alcli.artifacts.io import (
    Input,
    attrs_dict,
    check_dataset,
    check_format,
    format_of,
    local_input,
    open_input,
    open_local,
    read_array,
)
from alcli.artifacts.output import create_output, stamp
from alcli.artifacts.pixels import Pixels

KIND = "dataset"


@dataclass
class Dataset:
    images: Any  # np.ndarray (read_dataset) or Pixels (open_dataset: rows read from the file on demand)
    labels: np.ndarray
    class_names: list[str]
    ids: list[str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    name: str = ""
    label_round: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def row_ids(self) -> list[str]:
        """Each row's id: its `ids` entry (the path `pack` stored), or the row number as text."""
        return list(self.ids) if self.ids is not None else [str(i) for i in range(self.n)]

    def label_rounds(self) -> np.ndarray:
        """Each row's `label_round` (int32; -1 = never labelled by `alcli label`)."""
        return self.label_round if self.label_round is not None else np.full(self.n, -1, np.int32)


def read_dataset(path: str) -> Dataset:
    with open_input(path) as src:
        return dataset_from(src)


@contextlib.contextmanager
def open_dataset(path: str) -> Iterator[Dataset]:
    """The data set at `path` (`-` = stdin, spooled) with its pixels left in the file: `images` is a `Pixels`
    reader, valid while the block runs (labels, ids and names are in memory). Memory: O(N) labels only."""
    with local_input(path) as (real, name, sha):
        with open_local(real, name, sha) as src:
            data = dataset_from(src, with_images=False)
            data.images = Pixels(real, name, src.file["images"])
        try:
            yield data
        finally:
            data.images.close()


def dataset_from(src: Input, *, with_images: bool = True) -> Dataset:
    """The data set in `src`. With `with_images=False` the pixels are not read: `images` is a read-only
    zero placeholder of the right shape (for commands that only touch labels and ids; copy the pixels
    with `write_dataset(..., images_from=src.file["images"])`)."""
    if format_of(src) is not None:
        check_format(src, KIND)
    if with_images:
        images = read_array(src, "images", kinds="u", ndim=(3, 4))
    else:
        node = src.file.get("images")
        if not isinstance(node, h5py.Dataset):
            raise src.fail("missing dataset 'images'")
        check_dataset(src, "images", node, kinds="u", ndim=(3, 4))
        images = np.broadcast_to(np.zeros((), node.dtype), node.shape)
    if images.dtype != np.uint8:
        raise src.fail(f"'images' has dtype {images.dtype}, expected uint8")
    if images.ndim == 4 and images.shape[3] not in (1, 3):
        raise src.fail(f"'images' has {images.shape[3]} channels, expected 1 or 3 (N×H×W×C)")
    n = images.shape[0]
    if n == 0:
        raise src.fail("'images' is empty")
    labels = read_array(src, "labels", kinds="iu", ndim=(1,), required=False)
    labels = np.full(n, -1, np.int64) if labels is None else labels.astype(np.int64)
    if labels.shape[0] != n:
        raise src.fail(f"'labels' has {labels.shape[0]} rows, 'images' has {n}")
    attrs = attrs_dict(src)
    names = attrs.get("class_names")
    if names is None:
        known = labels[labels >= 0]
        names = [str(c) for c in range(int(known.max()) + 1 if known.size else 0)]
    names = [str(c) for c in names]
    if labels.size and (labels.min() < -1 or labels.max() >= max(len(names), 1)):
        bad = labels[(labels < -1) | (labels >= len(names))][0]
        raise src.fail(f"'labels' holds {int(bad)}, outside -1 (unlabelled) and [0, {len(names)})")
    ids = None
    if "ids" in src.file:
        raw = src.file["ids"]
        if not isinstance(raw, h5py.Dataset) or raw.shape != (n,):
            raise src.fail(f"'ids' must be {n} strings")
        ids = [v.decode() if isinstance(v, bytes) else str(v) for v in raw[()]]
    rounds = read_array(src, "label_round", kinds="iu", ndim=(1,), required=False)
    if rounds is not None:
        if rounds.shape[0] != n:
            raise src.fail(f"'label_round' has {rounds.shape[0]} rows, 'images' has {n}")
        if rounds.size and rounds.min() < -1:
            raise src.fail(f"'label_round' holds {int(rounds.min())}, expected -1 (never) or a round number")
        rounds = rounds.astype(np.int32)
    return Dataset(images, labels, names, ids, attrs, src.sha256, src.name, rounds)


def write_dataset(path: str, data: Dataset, parents: dict[str, str] | None = None, *,
                  images_from: h5py.Dataset | None = None) -> None:
    """Write `data`; with `images_from` (an open data set's `images`) the pixels are copied from there
    as stored (compressed chunks as they are: fast) instead of from `data.images`."""
    with create_output(path) as out:
        stamp(out, KIND, parents=parents)
        out.attrs["class_names"] = np.array(data.class_names, dtype=h5py.string_dtype())
        if "source" in data.attrs:
            out.attrs["source"] = str(data.attrs["source"])
        if images_from is not None:
            out.copy(images_from, "images")
        else:
            out.create_dataset("images", data=data.images, chunks=True, compression="gzip", compression_opts=4)
        out.create_dataset("labels", data=np.asarray(data.labels, np.int64))
        if data.ids is not None:
            out.create_dataset("ids", data=np.array(data.ids, dtype=h5py.string_dtype()))
        if data.label_round is not None:
            out.create_dataset("label_round", data=np.asarray(data.label_round, np.int32))
