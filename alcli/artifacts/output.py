"""Writing artifacts atomically: every output is built in a temporary file beside its target and renamed
over it on success only, or streamed to stdout for `-`; a failure (full disk, file size limit, Ctrl-C)
removes the temporary file and leaves an existing output as it was."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import h5py

from alcli import __version__
from alcli.errors import AlcliError, why

STDIO = "-"
FORMAT_PREFIX = "alcli."
_CHUNK = 1 << 20


# Temporary files alive in this process: removed on failure, and by the interrupt watchdog (alcli.signals)
# when a Ctrl-C cannot reach the main thread in time (a long native call).
temp_files: set[str] = set()


def remove_temp(path: str) -> None:
    temp_files.discard(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def display_output(path: str) -> str:
    return "<stdout>" if path == STDIO else path


def check_output(path: str) -> None:
    """Fail early (before any work) when an output cannot be written."""
    if path == STDIO:
        if sys.stdout.isatty():
            raise AlcliError("refusing to write binary HDF5 to a terminal: redirect stdout or use -o FILE", "-")
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise AlcliError("output folder does not exist", path)
    if os.path.isdir(path):
        raise AlcliError("output path is a folder", path)
    if not os.access(folder, os.W_OK):
        raise AlcliError("output folder is not writable", path)


def stamp(handle: h5py.File, kind: str, version: int = 1, parents: dict[str, str] | None = None) -> None:
    """The attrs every artifact carries."""
    handle.attrs["format"] = FORMAT_PREFIX + kind
    handle.attrs["version"] = version
    handle.attrs["alcli_version"] = __version__
    handle.attrs["created_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    handle.attrs["parents"] = json.dumps(parents or {}, sort_keys=True)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """A temporary path to write any file to. For a file target it lies beside `path` and is renamed
    over it on success only; for `-` it is streamed to stdout on success. Removed on any failure."""
    check_output(path)
    folder = None if path == STDIO else os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".alcli-tmp-", suffix=suffix, dir=folder)
    except OSError as exc:
        raise AlcliError(f"cannot create a temporary file beside it ({exc.strerror or exc})", path) from None
    temp_files.add(tmp)
    os.close(fd)
    try:
        try:
            yield tmp
        except (OSError, RuntimeError) as exc:  # h5py reports some HDF5 write failures as RuntimeError
            if not _is_write_error(exc):
                raise
            raise AlcliError(f"cannot write ({why(exc)})", display_output(path)) from None
        try:
            if path == STDIO:
                with open(tmp, "rb") as fh:
                    shutil.copyfileobj(fh, sys.stdout.buffer, _CHUNK)
                sys.stdout.buffer.flush()
                remove_temp(tmp)
            else:
                land(tmp, path)
                temp_files.discard(tmp)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise AlcliError(f"cannot write ({why(exc)})", display_output(path)) from None
    except BaseException:
        remove_temp(tmp)
        raise


def _is_write_error(exc: OSError | RuntimeError) -> bool:
    """A failure of the output itself (full disk, file size limit, I/O error), as opposed to an OSError
    from reading an input inside the writer's block (those are AlcliErrors already)."""
    import errno

    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS):
        return True
    text = str(exc).lower()  # h5py may report HDF5 write failures without an errno
    return any(w in text for w in ("write", "no space", "file too large", "flush", "extend file"))


def land(tmp: str, path: str) -> None:
    """Give a finished file the mode a new file gets (umask) and rename it over `path` (atomic)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


@contextlib.contextmanager
def create_output(path: str) -> Iterator[h5py.File]:
    """Yield a writable h5py.File; on success it lands at `path` (atomic rename) or on stdout."""
    with atomic_path(path, ".h5") as tmp, hdf5_file(tmp, path) as handle:
        yield handle


@contextlib.contextmanager
def hdf5_file(file: str, path: str, mode: str = "w", rdcc_nbytes: int | None = None) -> Iterator[h5py.File]:
    """An h5py.File on `file` (a temporary file, or a file kept between runs such as `pack`'s progress) for
    the artifact `path`, with every artifact's failure handling: a failed write (full disk, file size limit)
    is one line naming `path`, and the file is abandoned (never closed); on success it is closed and sealed.
    `rdcc_nbytes`: HDF5's chunk cache, for a writer of many chunks (its default is 1 MiB)."""
    _quiet_failed_writes()
    cache = {} if rdcc_nbytes is None else {"rdcc_nbytes": rdcc_nbytes}
    handle = h5py.File(file, mode, userblock_size=SEAL_SIZE, **cache) if mode == "w" else h5py.File(file, mode, **cache)
    try:
        yield handle
    except BaseException as exc:
        if isinstance(exc, (OSError, RuntimeError)) and _is_write_error(exc):
            _abandon(handle)
            raise AlcliError(f"cannot write ({why(exc)})", display_output(path)) from None
        try:
            handle.close()
        except Exception:  # the first error is the one to report
            _abandon(handle)
        raise
    try:
        handle.close()  # flushes: a full disk often shows here first
    except (OSError, RuntimeError) as exc:
        _abandon(handle)
        raise AlcliError(f"cannot write ({why(exc)})", display_output(path)) from None
    try:
        seal(file)
    except OSError as exc:
        raise AlcliError(f"cannot write ({why(exc)})", display_output(path)) from None


# The seal: every artifact alcli writes starts with a 512-byte HDF5 user block holding the sha256 of the
# rest of the file. Readers check it before HDF5 parses a byte, so a damaged artifact (flipped bytes, a
# truncated copy) is one line instead of whatever the HDF5 library does with it (it can crash the process:
# a segmentation fault reading the attrs of a byte-flipped file, found by tests/test_fuzz_artifacts.py).
# HDF5 and h5py skip the user block; files written by other tools simply have no seal.
SEAL_SIZE = 512
SEAL_MAGIC = b"alcli-seal 1 sha256 "


def content_sha256(path: str, start: int = SEAL_SIZE) -> str:
    """sha256 of a file's bytes from `start` on."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(start)
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def seal(path: str) -> None:
    """Write the seal into the user block of an HDF5 file created with userblock_size=SEAL_SIZE (also for
    tests that edit an artifact on purpose and want readers to get past the seal)."""
    header = SEAL_MAGIC + content_sha256(path).encode() + b"\n"
    with open(path, "r+b") as fh:
        fh.write(header.ljust(SEAL_SIZE, b"\0"))


# An HDF5 file whose writes failed (full disk, file size limit) cannot be closed: closing it again can crash
# HDF5 (a segmentation fault in H5Fclose), every h5py object of it reports the failure again when freed
# ("Exception ignored in ObjectID.__dealloc__"), and so may HDF5's own exit handler. So such a file is
# abandoned: never closed, kept referenced so that nothing frees it, its temporary file removed all the same;
# alcli.cli then leaves with os._exit (`left_open`), and the repeated reports are dropped.
hdf5_state = {"left_open": False, "hooked": False}
_abandoned: list[h5py.File] = []


def _abandon(handle: h5py.File) -> None:
    hdf5_state["left_open"] = True
    _abandoned.append(handle)


def _quiet_failed_writes() -> None:
    if hdf5_state["hooked"]:
        return
    hdf5_state["hooked"] = True
    previous = sys.unraisablehook

    previous_except = sys.excepthook

    def hook(unraisable: Any) -> None:
        if "h5py" in str(unraisable.object) and _is_write_error(unraisable.exc_value):
            return
        previous(unraisable)

    def excepthook(kind: Any, value: Any, tb: Any) -> None:  # h5py (Cython) prints the traceback through it
        where = tb.tb_frame.f_code.co_filename if tb is not None else ""
        if isinstance(value, RuntimeError) and "h5py" in where and _is_write_error(value):
            return
        previous_except(kind, value, tb)

    sys.unraisablehook = hook
    sys.excepthook = excepthook


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: equal real paths, or (both existing) the same device and inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
