"""`alcli.embeddings`: per-image features (the paper's distance space) and model outputs.

Datasets: `features` float32 N×D (penultimate-layer activations), `indices` int64 N (the data set row of
each feature row, sorted and unique; absent means 0..N-1), optional `probs` N×C (softmax), `mc_probs`
T×N×C (MC-dropout passes), `grad_features` N×G (BADGE gradient embeddings).
Attrs: pool_size (rows of the data set), checkpoint and dataset (names), plus the common attrs.

Also accepted as embeddings, so users can bring features from any model: a plain HDF5 file holding just a
`features` dataset, or a 2-D `.npy` matrix.
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
    check_finite,
    check_format,
    check_magnitude,
    format_of,
    open_input,
    read_array,
    sha256_file,
)
from alcli.artifacts.labeled import validate_indices
from alcli.artifacts.output import create_output, stamp
from alcli.errors import AlcliError

KIND = "embeddings"
OPTIONAL = ("probs", "mc_probs", "grad_features")
_BLOCK_ROWS = 65536


@dataclass
class Embeddings:
    features: np.ndarray
    indices: np.ndarray
    pool_size: int
    probs: np.ndarray | None = None
    mc_probs: np.ndarray | None = None
    grad_features: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    name: str = ""

    @property
    def n(self) -> int:
        return int(self.features.shape[0])

    def positions_of(self, rows: np.ndarray, what: str, source: str) -> np.ndarray:
        """Map data-set rows to positions in this embedding; every row must be present."""
        rows = np.asarray(rows, np.int64)
        pos = np.minimum(np.searchsorted(self.indices, rows), self.n - 1)
        missing = self.indices[pos] != rows
        if np.any(missing):
            row = int(rows[missing][0])
            raise AlcliError(f"{what} row {row} has no feature row in {self.name}", source)
        return pos


def read_embeddings(path: str, load: tuple[str, ...] = OPTIONAL) -> Embeddings:
    """Read and validate features (and the optional arrays named in `load`) into memory. Features larger
    than memory: `alcli.scale.outofcore.read_embeddings` keeps them on disk."""
    if path.endswith(".npy"):
        return read_npy(path)
    with open_input(path) as src:
        return embeddings_from(src, load)


def check_features_format(src: Input) -> None:
    """An embeddings artifact, or a plain HDF5 file holding just `features`."""
    if format_of(src) is not None or "features" not in src.file:
        check_format(src, KIND)


def embeddings_from(src: Input, load: tuple[str, ...] = OPTIONAL, features: Any = None) -> Embeddings:
    """The embeddings in an open input. `features`, when given, stands for the file's own (already checked,
    e.g. an out-of-core store of them); otherwise they are read into memory as float32."""
    check_features_format(src)
    if features is None:
        features = read_array(src, "features", kinds="fiu", ndim=(2,))
        features = _as_float32(src, features)
    n = features.shape[0]
    if n == 0 or features.shape[1] == 0:
        raise src.fail(f"'features' is empty (shape {features.shape})")
    attrs = attrs_dict(src)
    raw_indices = read_array(src, "indices", kinds="iu", ndim=(1,), required=False)
    pool_size = attrs.get("pool_size")
    if raw_indices is None:
        indices = np.arange(n, dtype=np.int64)
        pool_size = n if pool_size is None else pool_size
    else:
        if raw_indices.shape[0] != n:
            raise src.fail(f"'indices' has {raw_indices.shape[0]} rows, 'features' has {n}")
        pool_size = int(raw_indices.max()) + 1 if pool_size is None else pool_size
    if not isinstance(pool_size, int) or pool_size < n:
        raise src.fail(f"attr 'pool_size' {pool_size!r} is smaller than the {n} feature rows")
    if raw_indices is not None:
        indices = validate_indices(src, "indices", raw_indices, pool_size)
    emb = Embeddings(features, indices, pool_size, attrs=attrs, sha256=src.sha256, name=src.name)
    for key in load:
        arr = read_array(src, key, kinds="f", ndim=(_NDIM[key],), required=False, finite=True)
        if arr is not None:
            set_optional(src, emb, key, arr)
    return emb


_NDIM = {"probs": 2, "mc_probs": 3, "grad_features": 2}


def set_optional(src: Input, emb: Embeddings, key: str, arr: np.ndarray) -> None:
    """Attach one optional array (probs, mc_probs, grad_features) after checking it covers every row."""
    rows = arr.shape[1] if key == "mc_probs" else arr.shape[0]
    if rows != emb.n:
        raise src.fail(f"'{key}' covers {rows} rows, 'features' has {emb.n}")
    if key != "grad_features" and (arr.min() < 0 or arr.max() > 1 + 1e-4):
        raise src.fail(f"'{key}' holds values outside [0, 1]: not probabilities")
    setattr(emb, key, np.asarray(arr, np.float32))


def embeddings_of(features: Any, name: str = "features", store: Any = None, **optional: Any) -> Embeddings:
    """In-memory arrays (features N×D, any of probs, mc_probs, grad_features) as embeddings of a pool of N
    rows, with every check a file's arrays get; messages name `name`. `store`, when given, stands for the
    features' rows (an out-of-core FeatureStore over them, already checked)."""
    emb = _from_matrix(Input.named(name), features, store)
    attach_optional(emb, **optional)
    return emb


def attach_optional(emb: Embeddings, **optional: Any) -> None:
    """Attach in-memory optional arrays (probs, mc_probs, grad_features; None skipped), checked as a file's."""
    src = Input.named(emb.name or "features")
    for key, value in optional.items():
        if value is None:
            continue
        if key not in _NDIM:
            raise TypeError(f"unknown embeddings array {key!r}")
        arr = value if hasattr(value, "dtype") else np.asarray(value)
        check_dataset(src, key, arr, kinds="f", ndim=(_NDIM[key],))
        arr = np.asarray(arr)
        check_finite(src, key, arr)
        set_optional(src, emb, key, arr)


def _as_float32(src: Input, features: np.ndarray) -> np.ndarray:
    features = np.asarray(features)
    for start in range(0, features.shape[0], _BLOCK_ROWS):
        block = features[start : start + _BLOCK_ROWS]
        check_finite(src, "features", block, offset=start)
        check_magnitude(block, features.shape[1], src.name)
    return np.ascontiguousarray(features, np.float32)  # C order: the same arithmetic as rows read from HDF5


def read_npy(path: str, features: Any = None) -> Embeddings:
    """A 2-D `.npy` matrix as embeddings; `features`, when given, stands for its rows (see embeddings_from)."""
    import os

    if not os.path.exists(path):
        raise AlcliError("no such file", path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise AlcliError(f"not a readable .npy matrix ({' '.join(str(exc).split())[:120]})", path) from None
    src = Input.named(path, sha256_file(path))
    return _from_matrix(src, arr, features)


def _from_matrix(src: Input, arr: Any, features: Any) -> Embeddings:
    """A bare N×D matrix (a .npy file, an array): a pool of N rows. `features` as in embeddings_from."""
    if not hasattr(arr, "ndim"):
        arr = np.asarray(arr)
    if arr.ndim != 2:
        raise src.fail(f"features must be 2-D (N×D), got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise src.fail(f"features have dtype {arr.dtype}, expected numbers")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise src.fail(f"features are empty (shape {arr.shape})")
    if features is None:
        features = _as_float32(src, np.asarray(arr))
    n = features.shape[0]
    return Embeddings(features, np.arange(n, dtype=np.int64), n, sha256=src.sha256, name=src.name)


def write_embeddings(path: str, emb: Embeddings, parents: dict[str, str] | None = None) -> None:
    with create_output(path) as out:
        stamp(out, KIND, parents=parents)
        out.attrs["pool_size"] = int(emb.pool_size)
        for key, value in emb.attrs.items():
            if key not in out.attrs:
                out.attrs[key] = value
        out.create_dataset("features", data=np.asarray(emb.features, np.float32))
        out.create_dataset("indices", data=np.asarray(emb.indices, np.int64))
        for key in OPTIONAL:
            value = getattr(emb, key)
            if value is not None:
                out.create_dataset(key, data=np.asarray(value, np.float32))


class EmbeddingsWriter:
    """Row blocks of an embeddings artifact whose size is known up front (see `stream_embeddings`)."""

    def __init__(self, out: h5py.File, n: int) -> None:
        self._out = out
        self.n = n
        self.written = 0

    def write(self, features: np.ndarray, **optional: np.ndarray) -> None:
        """Append the next rows: features (B×D) and any of probs (B×C), mc_probs (T×B×C), grad_features."""
        start, stop = self.written, self.written + features.shape[0]
        if stop > self.n:
            raise ValueError(f"writing rows {start}:{stop} into an embeddings artifact of {self.n} rows")
        self._out["features"][start:stop] = features
        for key, value in optional.items():
            if key == "mc_probs":
                self._out[key][:, start:stop] = value
            else:
                self._out[key][start:stop] = value
        self.written = stop


@contextlib.contextmanager
def stream_embeddings(
    path: str,
    indices: np.ndarray,
    pool_size: int,
    dims: dict[str, tuple[int, ...]],
    attrs: dict[str, Any] | None = None,
    parents: dict[str, str] | None = None,
) -> Iterator[EmbeddingsWriter]:
    """Write an embeddings artifact block by block, for N = len(indices) rows known up front.
    `dims` gives each dataset's shape without N: {"features": (D,), "probs": (C,), "mc_probs": (T, C), ...}.
    Lands atomically (or on stdout) only when every row has been written."""
    n = int(len(indices))
    with create_output(path) as out:
        stamp(out, KIND, parents=parents)
        out.attrs["pool_size"] = int(pool_size)
        for key, value in (attrs or {}).items():
            if key not in out.attrs:
                out.attrs[key] = value
        out.create_dataset("indices", data=np.asarray(indices, np.int64))
        for key, shape in dims.items():
            if key != "features" and key not in OPTIONAL:
                raise ValueError(f"unknown embeddings dataset {key!r}")
            full = (shape[0], n, *shape[1:]) if key == "mc_probs" else (n, *shape)
            out.create_dataset(key, shape=full, dtype=np.float32)
        writer = EmbeddingsWriter(out, n)
        yield writer
        if writer.written != n:
            raise RuntimeError(f"embeddings artifact got {writer.written} of {n} rows (internal error)")
