"""`alcli.dataset`: the image pool.

Datasets: `images` uint8 N×H×W (grey) or N×H×W×C (C in 1, 3), `labels` int64 N with -1 for "not
labelled yet", optional `ids` strings N (e.g. relative file paths). Attrs: class_names, source.
The plain files in ../shared/data (images/labels, no `format` attr) are accepted as data sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from alcli.artifacts.io import Input, attrs_dict, check_format, create_output, format_of, open_input, read_array, stamp

KIND = "dataset"


@dataclass
class Dataset:
    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    ids: list[str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    name: str = ""

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def row_ids(self) -> list[str]:
        """Each row's id: its `ids` entry (the path `pack` stored), or the row number as text."""
        return list(self.ids) if self.ids is not None else [str(i) for i in range(self.n)]


def read_dataset(path: str) -> Dataset:
    with open_input(path) as src:
        return dataset_from(src)


def dataset_from(src: Input) -> Dataset:
    if format_of(src) is not None:
        check_format(src, KIND)
    images = read_array(src, "images", kinds="u", ndim=(3, 4))
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
    return Dataset(images, labels, names, ids, attrs, src.sha256, src.name)


def write_dataset(path: str, data: Dataset, parents: dict[str, str] | None = None) -> None:
    with create_output(path) as out:
        stamp(out, KIND, parents=parents)
        out.attrs["class_names"] = np.array(data.class_names, dtype=h5py.string_dtype())
        if "source" in data.attrs:
            out.attrs["source"] = str(data.attrs["source"])
        out.create_dataset("images", data=data.images, chunks=True, compression="gzip", compression_opts=4)
        out.create_dataset("labels", data=np.asarray(data.labels, np.int64))
        if data.ids is not None:
            out.create_dataset("ids", data=np.array(data.ids, dtype=h5py.string_dtype()))
