"""`pack`'s progress file, OUTPUT.partial: an HDF5 file beside the output holding the rows decoded so far,
the files found unreadable so far, and a fingerprint of everything that decides the output's bytes (the
folder, its file list with sizes and modification times, the options, the Pillow version). A rerun with
the same fingerprint continues where the last run stopped; any other fingerprint starts over. On success
the same file becomes the artifact: sealed and renamed over OUTPUT (so nothing is copied).

Rows are committed a few MiB at a time (whole chunks): the rows are written, then the attrs `rows` and `done` (how many
files of the listing are behind us) say they are there. A run stopped between the two leaves rows that the
next run cuts off. A file that HDF5 cannot open (a run killed mid-write) is started over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator

import h5py
import numpy as np

from alcli import console, signals
from alcli.artifacts.output import hdf5_file

SUFFIX = ".partial"
_FORMAT = 1  # the layout of this file and of the bytes `pack` decodes: bump when either changes
_CHUNK_BYTES = 512 * 1024
_MAX_CHUNK_ROWS = 16
_COMMIT_BYTES = 4 << 20  # rows buffered between commits: one HDF5 write (and two attrs) per few MiB ...
_COMMIT_ROWS = 64  # ... and at most this many rows, so a stopped run loses little
_CACHE_BYTES = 32 << 20  # HDF5's chunk cache for the progress file (its default, 1 MiB, made each write cost 3x)
_FLUSH_SECONDS = 1.0
_BOOKKEEPING = ("fingerprint", "rows", "done")


def partial_path(output: str) -> str:
    return output + SUFFIX


def chunk_rows(row_shape: tuple[int, ...]) -> int:
    """Rows per HDF5 chunk (about 512 KiB, at most 16 rows: a commit point every chunk)."""
    return int(min(_MAX_CHUNK_ROWS, max(1, _CHUNK_BYTES // max(1, int(np.prod(row_shape))))))


def commit_rows(row_shape: tuple[int, ...]) -> int:
    """Rows per commit: whole chunks adding up to about _COMMIT_BYTES (a commit per chunk of 3 photos made the
    HDF5 writes and attrs the main process's largest cost)."""
    per_chunk = chunk_rows(row_shape)
    chunks = min(_COMMIT_BYTES // max(1, per_chunk * int(np.prod(row_shape))), _COMMIT_ROWS // per_chunk)
    return per_chunk * max(1, chunks)


def fingerprint(folder: str, paths: list[str], labels: list[int], classes: list[str], options: dict) -> str:
    """sha256 of the inputs and options that decide the output's bytes."""
    import PIL

    files = []
    for rel, label in zip(paths, labels, strict=True):
        st = os.stat(os.path.join(folder, rel))
        files.append([rel, label, st.st_size, st.st_mtime_ns])
    text = json.dumps({"format": _FORMAT, "pillow": PIL.__version__, "folder": os.path.abspath(folder),
                       "classes": classes, "options": options, "files": files}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Progress:
    """The rows and unreadable files so far, in an open progress file."""

    def __init__(self, handle: h5py.File) -> None:
        self.handle = handle
        self.images: h5py.Dataset = handle["images"]
        self.rows = int(handle.attrs["rows"])
        self.done = int(handle.attrs["done"])
        index = handle["failed_index"][()]
        keep = int(np.searchsorted(index, self.done))
        reasons = [r.decode() if isinstance(r, bytes) else str(r) for r in handle["failed_reason"][:keep]]
        self.failed = list(zip(index[:keep].tolist(), reasons, strict=True))
        self.images.resize(self.rows, axis=0)  # rows a stopped run wrote but never committed
        for name in ("failed_index", "failed_reason"):
            handle[name].resize((keep,))
        self._flushed = time.monotonic()

    def commit(self, rows: np.ndarray, failed: list[tuple[int, str]], done: int) -> None:
        """Append `rows` and `failed` (position among the readable files, reason); the first `done` readable
        files are behind us."""
        if len(rows):
            self.images.resize(self.rows + len(rows), axis=0)
            self._write(rows)
        if failed:
            for name, values in (("failed_index", [i for i, _ in failed]), ("failed_reason", [r for _, r in failed])):
                node = self.handle[name]
                node.resize((len(self.failed) + len(failed),))
                node[len(self.failed):] = values
            self.failed += failed
        self.rows += len(rows)
        self.done = done
        self.handle.attrs["rows"] = self.rows
        self.handle.attrs["done"] = done
        if time.monotonic() - self._flushed > _FLUSH_SECONDS:
            self.handle.flush()
            self._flushed = time.monotonic()
        signals.announce(f"packed {self.rows}")

    def _write(self, rows: np.ndarray) -> None:
        """`rows` at self.rows: whole chunks straight to the file (H5Dwrite_chunk: no pass through HDF5's chunk
        cache, a third of the parent's time in h5py's writes), a last part chunk through h5py."""
        per = self.images.chunks[0]
        start, whole = self.rows, 0
        if start % per == 0:
            whole = len(rows) // per * per
            if not rows.flags.c_contiguous:
                rows = np.ascontiguousarray(rows)
            for k in range(0, whole, per):
                self.images.id.write_direct_chunk((start + k, *(0,) * (rows.ndim - 1)), rows[k:k + per])
        if whole < len(rows):
            self.images[start + whole:start + len(rows)] = rows[whole:]

    def strip(self) -> None:
        """Remove the bookkeeping: what is left is the artifact's images."""
        for name in _BOOKKEEPING:
            del self.handle.attrs[name]
        for name in ("failed_index", "failed_reason"):
            del self.handle[name]


@contextlib.contextmanager
def progress_file(file: str, output: str, fp: str, row_shape: tuple[int, ...], resume: bool) -> Iterator[Progress]:
    """The progress file at `file` for the artifact `output`: the one there when `resume` and its fingerprint
    is `fp`, else a new one (saying why an old one is not used). Sealed on success, kept as it is on failure."""
    mode = "w"
    if resume and os.path.exists(file):
        stale = _stale(file, fp, row_shape)
        if stale is None:
            mode = "a"
        else:
            console.say(f"[bold]pack[/]: {file} cannot be continued ({stale}): starting over")
    with hdf5_file(file, output, mode, rdcc_nbytes=_CACHE_BYTES) as handle:
        if mode == "w":
            rows = chunk_rows(row_shape)
            handle.create_dataset("images", shape=(0, *row_shape), maxshape=(None, *row_shape),
                                  chunks=(rows, *row_shape), dtype=np.uint8)
            handle.create_dataset("failed_index", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
            handle.create_dataset("failed_reason", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(),
                                  chunks=(256,))
            handle.attrs["fingerprint"] = fp
            handle.attrs["rows"] = 0
            handle.attrs["done"] = 0
        yield Progress(handle)


def _stale(file: str, fp: str, row_shape: tuple[int, ...]) -> str | None:
    """Why the progress file at `file` cannot be continued, or None when it can."""
    try:
        with h5py.File(file, "r") as old:
            if old.attrs.get("fingerprint") != fp:
                return "made from other files or options"
            images = old["images"]
            if images.shape[1:] != row_shape or images.dtype != np.uint8:
                return "rows of another shape"
            if not 0 <= int(old.attrs["rows"]) <= images.shape[0] or "failed_index" not in old:
                return "inconsistent"
    except Exception:  # unreadable for any reason (a run killed mid-write): it cannot be continued
        return "unreadable"
    return None
