"""Corrupted copies of HDF5 artifacts for the fuzz tests: byte flips, truncation, and structured damage to
every dataset (deleted, another dtype, rank or length, NaN, out-of-range values) and every root attr
(deleted, another type, another value). A mutation is a plain tuple, so hypothesis can draw and print it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from hypothesis import strategies as st

from alcli.artifacts.output import seal

DATASET_DAMAGE = ("delete", "group", "dtype:float64", "dtype:int64", "dtype:uint8", "dtype:bytes", "dtype:bool",
                  "rank:more", "rank:less", "rank:scalar", "len:more", "len:less", "len:empty", "nan", "inf",
                  "negative", "huge")
ATTR_DAMAGE = ("delete", "type:int", "type:float", "type:text", "type:bytes", "type:list", "type:floats",
               "type:texts", "type:bool", "value:negative", "value:zero", "value:huge", "value:nan", "value:text",
               "value:empty", "value:json", "value:other-kind", "value:longer", "value:shorter")

Mutation = tuple[Any, ...]


def layout(path: Path) -> tuple[list[str], list[str]]:
    """(every dataset's path, every root attr's name) of an HDF5 file."""
    names: list[str] = []
    with h5py.File(path, "r") as fh:
        fh.visititems(lambda name, node: names.append(name) if isinstance(node, h5py.Dataset) else None)
        return sorted(names), sorted(fh.attrs.keys())


def mutations(path: Path) -> st.SearchStrategy[Mutation]:
    """Every kind of damage to the file at `path` (its datasets and attrs read once, here)."""
    size = path.stat().st_size
    datasets, attrs = layout(path)
    return st.one_of(
        st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)),
                                            min_size=1, max_size=4)),
        st.tuples(st.just("truncate"), st.integers(0, size - 1)),
        st.tuples(st.just("dataset"), st.sampled_from(datasets), st.sampled_from(DATASET_DAMAGE)),
        st.tuples(st.just("attr"), st.sampled_from(attrs), st.sampled_from(ATTR_DAMAGE)),
    )


def corrupt_copy(src: Path, dst: Path, mutation: Mutation) -> None:
    """Write a copy of `src` to `dst` with `mutation` applied."""
    shutil.copyfile(src, dst)
    kind = mutation[0]
    if kind == "flip":
        with open(dst, "r+b") as fh:
            for offset, xor in mutation[1]:
                fh.seek(offset)
                byte = fh.read(1)[0]
                fh.seek(offset)
                fh.write(bytes([byte ^ xor]))
    elif kind == "truncate":
        with open(dst, "r+b") as fh:
            fh.truncate(mutation[1])
    elif kind == "dataset":
        with h5py.File(dst, "r+") as fh:
            _damage_dataset(fh, mutation[1], mutation[2])
        seal(str(dst))  # structured damage must reach the validation under test, not stop at the seal
    elif kind == "attr":
        with h5py.File(dst, "r+") as fh:
            _damage_attr(fh.attrs, mutation[1], mutation[2])
        seal(str(dst))
    else:
        raise ValueError(mutation)


def _damage_dataset(fh: h5py.File, name: str, how: str) -> None:
    data = fh[name][()]
    del fh[name]
    if how == "delete":
        return
    if how == "group":
        fh.create_group(name)
        return
    data = np.asarray(data)
    if data.dtype.kind in "OS":
        data = np.array([v if isinstance(v, bytes) else str(v).encode() for v in data.reshape(-1)],
                        dtype="S").reshape(data.shape)
    if how.startswith("dtype:"):
        want = how.split(":")[1]
        if want == "bytes":
            data = np.array([str(v).encode() for v in data.reshape(-1)], dtype="S").reshape(data.shape)
        elif data.dtype.kind == "S":
            data = np.zeros(data.shape, want)
        else:
            data = data.astype(want)
    elif how == "rank:more":
        data = data[..., None]
    elif how == "rank:less":
        data = data.reshape(-1) if data.ndim > 1 else (data[0] if data.size else np.zeros((), data.dtype))
    elif how == "rank:scalar":
        data = data.reshape(-1)[0] if data.size else np.zeros((), data.dtype)
    elif how.startswith("len:"):
        if data.ndim == 0:
            data = data.reshape(1)
        if how == "len:more":
            data = np.concatenate([data, data[:1] if len(data) else np.zeros((1, *data.shape[1:]), data.dtype)])
        elif how == "len:less":
            data = data[:-1]
        else:
            data = data[:0]
    elif data.dtype.kind in "fiub" and data.size:
        data = _bad_value(data, how)
    fh.create_dataset(name, data=data)


def _bad_value(data: np.ndarray, how: str) -> np.ndarray:
    flat = data.reshape(-1).copy()
    if how in ("nan", "inf"):
        flat = flat.astype(np.float64) if flat.dtype.kind != "f" else flat
        flat[len(flat) // 2] = np.nan if how == "nan" else np.inf
    elif how == "negative":
        flat = flat.astype(np.int64) if flat.dtype.kind in "ub" else flat
        flat[-1] = -7
    elif how == "huge":
        if flat.dtype.kind == "f":
            flat[0] = 3e38
        else:
            flat = flat.astype(np.int64) if flat.dtype.kind in "ub" else flat
            flat[0] = np.iinfo(flat.dtype).max
    return flat.reshape(data.shape)


def _damage_attr(attrs: h5py.AttributeManager, name: str, how: str) -> None:
    old = attrs[name]
    if how == "delete":
        del attrs[name]
        return
    values: dict[str, Any] = {
        "type:int": np.int64(3), "type:float": np.float64(2.5), "type:text": "x", "type:bytes": np.bytes_(b"\xff\xfe"),
        "type:list": np.arange(3, dtype=np.int64), "type:floats": np.ones((2, 2)),
        "type:texts": np.array(["a", "b"], dtype=h5py.string_dtype()), "type:bool": np.bool_(True),
        "value:negative": -5, "value:zero": 0, "value:huge": np.int64(2**62), "value:nan": np.nan,
        "value:text": "alcli.labeled", "value:empty": "", "value:json": '{"x": [1, 2', "value:other-kind": "alcli.nope",
    }
    if how in ("value:longer", "value:shorter"):
        arr = np.atleast_1d(np.asarray(old))
        new = np.concatenate([arr, arr[:1]]) if how == "value:longer" else arr[:-1]
        if arr.dtype.kind in "OSU":
            new = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in new], dtype=h5py.string_dtype())
        attrs[name] = new
        return
    attrs[name] = values[how]
