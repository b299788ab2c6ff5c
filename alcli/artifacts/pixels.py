"""A data set's `images` left in the file: rows are read on demand, a batch at a time, never the whole pool.

`Pixels` stands in for the N×H×W(×C) uint8 array (shape, ndim, dtype, indexing by a slice, a row or an array
of rows), so the learning code can stream from the file. Each process opens the file itself, on its first read
(an h5py handle does not survive a fork, so a DataLoader or Dask worker reopens it), with a chunk cache sized by
`set_cache` to hold the chunks a batch touches (HDF5's default is 1 MiB: a gzip chunk of 1,024 CIFAR images
is 3 MiB, so without it every batch would decompress its chunks again). Rows in any order and with repeats
are read sorted and unique (what HDF5's selections need, and chunk order), then put back in the order asked.
A read that fails is one AlcliError naming the file.
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from alcli.errors import AlcliError, short

DEFAULT_CACHE = 1 << 20


class Pixels:
    """The `images` dataset of the HDF5 file at `path` (`name` is how messages call it)."""

    def __init__(self, path: str, name: str, node: h5py.Dataset) -> None:
        self.path = path
        self.name = name
        self.shape: tuple[int, ...] = tuple(int(v) for v in node.shape)
        self.dtype = np.dtype(node.dtype)
        self.chunks: tuple[int, ...] | None = tuple(node.chunks) if node.chunks else None
        self.cache_bytes = DEFAULT_CACHE
        self._handle: h5py.File | None = None
        self._node: h5py.Dataset | None = None  # kept open: HDF5's chunk cache lives and dies with it
        self._pid = -1

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:])) * self.dtype.itemsize

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk (whole images assumed; a contiguous dataset counts as one chunk of every row)."""
        return self.chunks[0] if self.chunks else self.shape[0]

    @property
    def chunk_bytes(self) -> int:
        if not self.chunks:
            return 0
        return int(np.prod(self.chunks)) * self.dtype.itemsize

    def chunks_spanned(self, rows: int) -> int:
        """The most chunks `rows` consecutive rows can touch."""
        return -(-max(rows - 1, 0) // self.chunk_rows) + 1

    def set_cache(self, nbytes: int) -> None:
        """Use a chunk cache of `nbytes` (applies from the next open, in this process and in workers)."""
        self.cache_bytes = max(int(nbytes), DEFAULT_CACHE)
        self.close()

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = self._node = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"], state["_node"], state["_pid"] = None, None, -1
        return state

    def _dataset(self) -> h5py.Dataset:
        if self._handle is None or self._pid != os.getpid():
            slots = max(521, 100 * (self.cache_bytes // max(self.chunk_bytes, 1))) | 1
            try:
                self._handle = h5py.File(self.path, "r", rdcc_nbytes=self.cache_bytes, rdcc_nslots=slots)
            except (OSError, RuntimeError, ValueError) as exc:
                raise AlcliError(f"cannot reopen to read its images ({short(exc)})", self.name) from None
            self._node = self._handle["images"]
            self._pid = os.getpid()
        return self._node  # type: ignore[return-value]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step != 1:
                return self[np.arange(start, stop, step)]
            return self._read(slice(start, stop))
        if isinstance(key, (int, np.integer)):
            return self._read(int(key))
        rows = np.asarray(key, np.int64)
        if rows.ndim != 1:
            raise TypeError("Pixels take a slice, a row or a 1-D array of rows")
        if rows.size == 0:
            return np.empty((0, *self.shape[1:]), self.dtype)
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise IndexError(f"rows outside 0..{self.shape[0] - 1}")
        if rows.size > 1 and np.all(np.diff(rows) > 0):
            return self._sorted(rows)
        unique, inverse = np.unique(rows, return_inverse=True)
        return self._sorted(unique)[inverse]

    def _sorted(self, rows: np.ndarray) -> np.ndarray:
        """Strictly increasing rows: a run is one slice, otherwise one selection (HDF5 walks it in chunk order)."""
        if int(rows[-1]) - int(rows[0]) + 1 == rows.size:
            return self._read(slice(int(rows[0]), int(rows[-1]) + 1))
        return self._read(rows)

    def _read(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self._dataset()[key])
        except AlcliError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise AlcliError(f"cannot read rows of 'images': truncated or corrupt ({short(exc)})", self.name) from None
