"""`alcli.coords`: 2-D coordinates of pool points (`alcli map --coords-out`), for re-plotting.

Datasets: `coords` float32 M×2, `indices` int64 M (the data-set row of each point, sorted, unique).
Attrs: pool_size, projection (tsne|pca), seed, points_total (feature rows before subsampling),
embeddings (name), plus the common attrs. `alcli map COORDS.h5 --labeled ...` draws from it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alcli.artifacts.io import Input, attrs_dict, check_format, open_input, pool_size_attr, read_array
from alcli.artifacts.labeled import validate_indices
from alcli.artifacts.output import create_output, stamp

KIND = "coords"


@dataclass
class Coords:
    coords: np.ndarray  # (M, 2)
    indices: np.ndarray  # (M,) data-set rows, sorted
    pool_size: int
    attrs: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    name: str = ""


def read_coords(path: str) -> Coords:
    with open_input(path) as src:
        return coords_from(src)


def coords_from(src: Input) -> Coords:
    check_format(src, KIND)
    attrs = attrs_dict(src)
    pool_size = pool_size_attr(src, attrs)
    coords = read_array(src, "coords", kinds="f", ndim=(2,), finite=True)
    if coords.shape[1] != 2 or coords.shape[0] == 0:
        raise src.fail(f"'coords' has shape {coords.shape}, expected M×2 with M ≥ 1")
    indices = validate_indices(src, "indices", read_array(src, "indices", kinds="iu", ndim=(1,)), pool_size)
    if indices.size != coords.shape[0]:
        raise src.fail(f"'indices' has {indices.size} rows, 'coords' {coords.shape[0]}")
    return Coords(coords.astype(np.float64), indices, pool_size, attrs, src.sha256, src.name)


def write_coords(path: str, coords: Coords, parents: dict[str, str] | None = None) -> None:
    with create_output(path) as out:
        stamp(out, KIND, parents=parents)
        out.attrs["pool_size"] = int(coords.pool_size)
        for key, value in coords.attrs.items():
            if key not in out.attrs and value is not None:
                out.attrs[key] = value
        out.create_dataset("coords", data=np.asarray(coords.coords, np.float32))
        out.create_dataset("indices", data=np.asarray(coords.indices, np.int64))
