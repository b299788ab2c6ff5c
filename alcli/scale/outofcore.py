"""Features larger than RAM: a read-only, row-addressable view of `features` that keeps few pages resident.

`FeatureStore` maps the raw float32 rows of the file (an uncompressed contiguous HDF5 dataset in place,
via its byte offset; a .npy matrix after its header; anything else — chunked, compressed, float64 — is
spooled once, block by block, to a temporary raw file). Rows are gathered with numpy indexing on the
mapping, so k-Center-Greedy's pruned steps read only the rows they touch.

Honest memory: pages of a file mapping that the process has touched count in its RSS. The store counts
the bytes it hands out and, once they pass its page budget, tells the kernel it no longer needs the
mapping (madvise MADV_DONTNEED): the process' RSS falls back, the data stays in the page cache (which the
kernel may drop under pressure, and which no process is charged for). A fault maps a whole page-cache
folio (up to 2 MiB with large folios, Linux ≥ 6.x), not one page, so the store counts 2 MiB windows and
releases *before* a gather would pass the budget: the features' share of the peak RSS is the budget.

`--memory-limit SIZE` is the budget for everything `select` holds beyond the interpreter and libraries:
the per-point state (`STATE_BYTES_PER_POINT`), one greedy shard's start-up scratch, blocks in flight, and
resident feature pages (the rest). Not in it: the labelled centers, held twice in RAM (8·d bytes each).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import tempfile
from typing import Any

import h5py
import numpy as np

from alcli.artifacts import embeddings
from alcli.artifacts.io import check_dataset, check_magnitude, open_input
from alcli.artifacts.output import temp_files
from alcli.errors import AlcliError

# Per candidate point, held by select beyond the features: embedding indices, pool, candidates and
# GreedyShard's rows/positions/s/thr/assign/norms (~68 B), plus numpy temporaries (setdiff1d, isin).
STATE_BYTES_PER_POINT = 120
MIN_PAGE_BUDGET = 16 << 20
WINDOW = 2 << 20  # one page fault on a file mapping may map a whole large folio, up to 2 MiB (x86-64 PMD)
SHARD_ROWS = 1 << 16  # greedy shards: the nearest-center start of one shard needs ~START_BYTES a point
START_BYTES_PER_POINT = 320  # FAISS neighbours (n×8 distances and ids), the close pairs, exact distances
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, source: str = "--memory-limit") -> int:
    """'200M', '2G', '1.5g', '4096' (bytes) -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*", str(text).lower())
    if not match or float(match.group(1)) <= 0:
        raise AlcliError(f"{text!r} is not a size (use e.g. 200M, 2G, 1.5G)", source)
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (None where unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss() -> int:
    """Peak resident set size of this process' memory (VmHWM), in bytes; 0 where /proc is absent.
    Unlike getrusage's ru_maxrss it starts afresh at exec, so a child does not inherit its parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


class FeatureStore:
    """Read-only N×D float32 rows on disk; `store[rows]`, `store[a:b]`, `store[i]` return in-RAM copies."""

    ndim = 2
    dtype = np.dtype(np.float32)
    shard_rows = SHARD_ROWS  # kcenter_greedy splits its candidates into shards of this many rows

    def __init__(self, path: str, offset: int, shape: tuple[int, int], page_budget: int,
                 owned: bool = False) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.page_budget = int(page_budget)
        self.path = path
        self.owned = owned  # a spooled temporary file, deleted with the store
        self.touched = 0
        self.drops = 0
        nbytes = self.shape[0] * self.shape[1] * 4
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        with open(path, "rb") as fh:
            self._map = mmap.mmap(fh.fileno(), nbytes + offset - start, access=mmap.ACCESS_READ, offset=start)
        self._rows = np.frombuffer(self._map, np.float32, self.shape[0] * self.shape[1], offset - start)
        self._rows = self._rows.reshape(self.shape)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        """A copy of the rows `key` (int, slice or index array), gathered in pieces so that the mapped
        pages never exceed the page budget: before a piece that would pass it, the mapping is released."""
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        rows = np.arange(*key.indices(self.shape[0])) if isinstance(key, slice) else np.asarray(key, np.int64)
        single = rows.ndim == 0
        rows = rows.reshape(-1)
        order = None if rows.size < 2 or bool(np.all(rows[1:] >= rows[:-1])) else np.argsort(rows, kind="stable")
        r = rows if order is None else rows[order]
        cum = self._window_bytes(r)
        out = np.empty((r.size, self.shape[1]), np.float32)
        i = 0
        while i < r.size:
            done = int(cum[i - 1]) if i else 0
            j = int(np.searchsorted(cum, done + self.page_budget - self.touched - WINDOW, side="right"))
            if j <= i:
                if self.touched:
                    self.release()
                    continue
                j = i + 1  # one row bigger than the whole budget: take it anyway
            out[i:j] = self._rows[r[i:j]]
            self.touched += int(cum[j - 1]) - done
            i = j
        if order is not None:
            out[order] = out.copy()
        return out[0] if single else out

    def _window_bytes(self, r: np.ndarray) -> np.ndarray:
        """Cumulative bytes mapped by gathering sorted rows r[:i+1]: each fault maps a whole page-cache
        folio (up to 2 MiB on current kernels, aligned in the address space), so count new windows."""
        row_bytes = 4 * self.shape[1]
        addr = self._rows.__array_interface__["data"][0] + r * row_bytes
        first, last = addr // WINDOW, (addr + row_bytes - 1) // WINDOW
        prev = np.concatenate([[-1], last[:-1]])
        new = np.maximum(last - np.maximum(first, prev + 1) + 1, 0)
        return np.cumsum(new) * WINDOW

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole matrix in RAM (for strategies that need it all; defeats the memory limit)."""
        return np.array(self._rows, dtype or np.float32)

    def release(self) -> None:
        """Drop this process' resident pages of the mapping (the page cache keeps them)."""
        if hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)
        self.touched = 0
        self.drops += 1

    def blocks(self, rows: int | None = None) -> Any:
        """(start, block) over all rows, in order."""
        step = rows or max(256, min(self.page_budget // 4, 8 << 20) // (4 * self.shape[1]))
        for start in range(0, self.shape[0], step):
            yield start, self[start : start + step]

    def close(self) -> None:
        try:
            self._rows = None  # type: ignore[assignment]
            self._map.close()
        except (BufferError, ValueError):
            pass
        if self.owned:
            temp_files.discard(self.path)
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __del__(self) -> None:
        if getattr(self, "owned", False) and os.path.exists(self.path):
            self.close()


def page_budget_for(memory_limit: int, n: int) -> int:
    """Resident feature pages allowed under `memory_limit` for n candidate points."""
    state = STATE_BYTES_PER_POINT * n + START_BYTES_PER_POINT * min(n, SHARD_ROWS) + (24 << 20)  # + blocks
    budget = memory_limit - state
    if budget < MIN_PAGE_BUDGET:
        need = (state + MIN_PAGE_BUDGET) / 2**20
        raise AlcliError(f"{memory_limit / 2**20:.0f} MiB is too little for {n} points: out-of-core selection "
                         f"needs at least {need:.0f} MiB (≈{STATE_BYTES_PER_POINT} B per point + buffers)",
                         "--memory-limit")
    return budget


def read_embeddings(path: str, load: tuple[str, ...] = embeddings.OPTIONAL,
                    memory_limit: int | None = None) -> embeddings.Embeddings:
    """`alcli.artifacts.embeddings.read_embeddings`, but with `memory_limit` (bytes) the features stay on disk
    as a `FeatureStore` (rows gathered on demand); the other arrays and every check are the artifact's own."""
    if memory_limit is None:
        return embeddings.read_embeddings(path, load)
    if path.endswith(".npy"):
        if not os.path.exists(path):
            raise AlcliError("no such file", path)
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (ValueError, OSError):
            return embeddings.read_npy(path)  # says what is wrong with it
        store = store_from_npy(path, page_budget_for(memory_limit, shape[0])) if len(shape) == 2 else None
        return embeddings.read_npy(path, features=store)
    with open_input(path) as src:
        embeddings.check_features_format(src)
        node = src.file.get("features")
        if not isinstance(node, h5py.Dataset):
            raise src.fail("missing dataset 'features'")
        check_dataset(src, "features", node, kinds="fiu", ndim=(2,))
        if 0 in node.shape:
            raise src.fail(f"'features' is empty (shape {node.shape})")
        budget = page_budget_for(memory_limit, node.shape[0])
        store = store_from_dataset(node, src.file.filename, src.name, budget)
        return embeddings.embeddings_from(src, load, features=store)


def store_from_dataset(node: h5py.Dataset, filename: str, name: str, page_budget: int) -> FeatureStore:
    """A store over an HDF5 `features` dataset: in place when raw contiguous float32, else spooled."""
    offset = node.id.get_offset() if node.chunks is None else None
    if offset is not None and node.dtype == np.dtype("<f4") and node.compression is None:
        store = FeatureStore(filename, offset, node.shape, page_budget)
        _check_finite(store, name)
        return store
    return _spool(node, name, page_budget)


def store_from_npy(path: str, page_budget: int) -> FeatureStore | None:
    """A store over a .npy matrix (little-endian float32, C order); None when another layout needs
    the in-memory reader."""
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
        except ValueError:
            return None
        offset = fh.tell()
    if fortran or dtype != np.dtype("<f4") or len(shape) != 2 or 0 in shape:
        return None
    store = FeatureStore(path, offset, shape, page_budget)
    _check_finite(store, path)
    return store


def _check_finite(store: FeatureStore, name: str) -> None:
    for start, block in store.blocks():
        if not np.isfinite(block).all():
            row, col = np.argwhere(~np.isfinite(block))[0]
            raise AlcliError(f"'features' holds NaN or inf (first at {[int(row) + start, int(col)]})", name)
        check_magnitude(block, store.shape[1], name)


def _spool(node: h5py.Dataset, name: str, page_budget: int) -> FeatureStore:
    """Copy a chunked/compressed/non-float32 dataset once to a raw float32 temporary file, in blocks."""
    n, d = node.shape
    step = max(1, (node.chunks[0] if node.chunks else 0) or max(256, (16 << 20) // max(1, 4 * d)))
    step = max(step, 256)
    fd, tmp = tempfile.mkstemp(prefix="alcli-features-", suffix=".f32")
    temp_files.add(tmp)  # removed by the interrupt watchdog too (a Ctrl-C in a long native call)
    try:
        with os.fdopen(fd, "wb") as out:
            for start in range(0, n, step):
                try:
                    block = np.asarray(node[start : start + step], np.float32)
                except (OSError, ValueError) as exc:
                    raise AlcliError(f"cannot read 'features': truncated or corrupt ({str(exc)[:120]})",
                                     name) from None
                if not np.isfinite(block).all():
                    row, col = np.argwhere(~np.isfinite(block))[0]
                    raise AlcliError(f"'features' holds NaN or inf (first at {[int(row) + start, int(col)]})",
                                     name)
                out.write(np.ascontiguousarray(block).tobytes())
        return FeatureStore(tmp, 0, (n, d), page_budget, owned=True)
    except BaseException:
        temp_files.discard(tmp)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


OUT_OF_CORE_METHODS = ("kcenter", "random")


def resolve_memory_limit(text: str | int | None, path: str, method: str, distributed: bool = False) -> int | None:
    """Bytes for `select --memory-limit` (a size text, or bytes; None = in memory). Without the option, features
    files larger than 70% of the available memory go out of core under half of it, for the methods that support it;
    with a Dask scheduler the driver only streams the rows to the workers, so it reads them out of core
    under max(512 MiB, a quarter of the file)."""
    if text is None:
        avail = available_memory()
        size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else 0
        if distributed and method == "kcenter":
            return max(512 << 20, size // 4)
        if method in OUT_OF_CORE_METHODS and avail and size > 0.7 * avail:
            return avail // 2
        return None
    limit = _bytes(text)
    if method not in OUT_OF_CORE_METHODS:
        raise AlcliError(f"method {method!r} needs the features in memory; out of core: "
                         f"{', '.join(OUT_OF_CORE_METHODS)}", "--memory-limit")
    return limit


def _bytes(size: str | int) -> int:
    if isinstance(size, str):
        return parse_size(size)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise AlcliError(f"{size!r} is not a size (use e.g. 200M, 2G, 1.5G, or a number of bytes)", "--memory-limit")
    return int(size)
