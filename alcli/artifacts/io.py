"""Opening, validating and atomically writing HDF5 artifacts, with `-` for stdin/stdout.

HDF5 seeks, so it cannot be read from or written to a pipe directly. Inputs on stdin are spooled to a
temporary file (constant memory, hashed on the way); outputs are always built in a temporary file and
then either renamed over the target (same folder, so the rename is atomic) or streamed to stdout.
A crash or Ctrl-C therefore never leaves half an artifact behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from alcli import __version__
from alcli.errors import AlcliError

STDIO = "-"
FORMAT_PREFIX = "alcli."
_CHUNK = 1 << 20
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def display_name(path: str) -> str:
    """How a path is named in messages: stdin/stdout get a readable name."""
    return "<stdin>" if path == STDIO else path


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(block)
    except OSError as exc:
        raise AlcliError(f"cannot read ({exc.strerror or exc})", path) from None
    return digest.hexdigest()


class Input:
    """An opened input artifact: the h5py file, the name to use in messages, and its sha256."""

    def __init__(self, file: h5py.File, name: str, sha256: str) -> None:
        self.file = file
        self.name = name
        self.sha256 = sha256

    def fail(self, message: str) -> AlcliError:
        return AlcliError(message, self.name)


def _spool_stdin() -> tuple[str, str]:
    """Copy stdin to a temporary file; return (path, sha256). Empty stdin is an error."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix="alcli-stdin-", suffix=".h5")
    temp_files.add(tmp)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            stream = sys.stdin.buffer
            for block in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(block)
                out.write(block)
                size += len(block)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise AlcliError(f"cannot spool stdin to {tempfile.gettempdir()} ({exc.strerror or exc})",
                             "<stdin>") from None
        raise
    if size == 0:
        _remove(tmp)
        raise AlcliError("empty input: nothing arrived on stdin", "<stdin>")
    return tmp, digest.hexdigest()


def _check_readable(path: str) -> None:
    if os.path.isdir(path):
        raise AlcliError("is a folder, not a file", path)
    if not os.path.exists(path):
        raise AlcliError("no such file", path)
    if os.path.getsize(path) == 0:
        raise AlcliError("empty file", path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != _HDF5_SIGNATURE and not h5py.is_hdf5(path):
        raise AlcliError("not an HDF5 file", path)


@contextlib.contextmanager
def open_input(path: str) -> Iterator[Input]:
    """Open an HDF5 artifact for reading (`-` = stdin). Never modifies the input."""
    name = display_name(path)
    spooled = None
    if path == STDIO:
        spooled, sha = _spool_stdin()
        real = spooled
        with open(real, "rb") as fh:
            if fh.read(8) != _HDF5_SIGNATURE:
                _remove(real)
                raise AlcliError("not an HDF5 file", name)
    else:
        _check_readable(path)
        real = path
        sha = sha256_file(path)
    try:
        try:
            handle = h5py.File(real, "r")
        except (OSError, RuntimeError, ValueError) as exc:
            raise AlcliError(f"truncated or corrupt HDF5 file ({_short(exc)})", name) from None
        with handle, reading(name):
            yield Input(handle, name, sha)
    finally:
        if spooled is not None:
            _remove(spooled)


# What reading a damaged or hand-made file can raise from h5py/HDF5 (OSError, RuntimeError, KeyError),
# from a value of the wrong type or shape (TypeError, ValueError, IndexError, OverflowError) or from text
# that is not UTF-8 or JSON (UnicodeError is a ValueError).
READ_ERRORS = (OSError, RuntimeError, KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError)


@contextlib.contextmanager
def reading(name: str) -> Iterator[None]:
    """The one place where a failure to read an input becomes a one-line AlcliError naming the file.
    Wraps only the code that reads (the `with open_input(...)` block of each artifact reader)."""
    try:
        yield
    except AlcliError:
        raise
    except READ_ERRORS as exc:
        raise AlcliError(f"corrupt or malformed ({type(exc).__name__}: {_short(exc)})", name) from None


def _why(exc: BaseException) -> str:
    """An OS error in words ('No space left on device'), else the exception's text, short."""
    number = getattr(exc, "errno", None)
    if isinstance(number, int) and number > 0:
        return os.strerror(number)
    import re

    found = re.search(r"errno = (\d+)", str(exc))  # HDF5 puts the errno in its message
    return os.strerror(int(found.group(1))) if found else _short(exc)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160]


def check_format(src: Input, kind: str, versions: tuple[int, ...] = (1,)) -> int:
    """Require attrs format == 'alcli.<kind>' and a supported version; return the version."""
    attrs = src.file.attrs
    fmt = _text(attrs.get("format"))
    if fmt is None:
        raise src.fail(f"missing 'format' attr: not an alcli {kind} artifact")
    if fmt != FORMAT_PREFIX + kind:
        raise src.fail(f"is a {fmt!r} artifact, expected 'alcli.{kind}'")
    version = attrs.get("version")
    if version is None:
        raise src.fail("missing 'version' attr")
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise src.fail(f"unreadable 'version' attr {version!r}") from None
    if number not in versions:
        raise src.fail(f"{kind} version {number} is not supported (this alcli reads {list(versions)})")
    return number


def format_of(src: Input) -> str | None:
    return _text(src.file.attrs.get("format"))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def read_array(
    src: Input,
    name: str,
    *,
    kinds: str,
    ndim: tuple[int, ...],
    required: bool = True,
    finite: bool = False,
) -> np.ndarray | None:
    """Read a dataset fully, checking dtype kind (numpy kind letters, e.g. 'iu' or 'f'), rank and
    finiteness. Missing optional datasets give None."""
    node = src.file.get(name)
    if node is None:
        if required:
            raise src.fail(f"missing dataset '{name}'")
        return None
    if not isinstance(node, h5py.Dataset):
        raise src.fail(f"'{name}' is not a dataset")
    check_dataset(src, name, node, kinds=kinds, ndim=ndim)
    try:
        data = node[()]
    except (OSError, ValueError) as exc:
        raise src.fail(f"cannot read '{name}': truncated or corrupt ({_short(exc)})") from None
    if finite:
        check_finite(src, name, data)
    return data


def check_dataset(src: Input, name: str, node: h5py.Dataset, *, kinds: str, ndim: tuple[int, ...]) -> None:
    if node.dtype.kind not in kinds:
        raise src.fail(f"'{name}' has dtype {node.dtype}, expected {_kind_words(kinds)}")
    if node.ndim not in ndim:
        want = " or ".join(f"{n}-D" for n in ndim)
        raise src.fail(f"'{name}' is {node.ndim}-D with shape {node.shape}, expected {want}")


def check_finite(src: Input, name: str, data: np.ndarray, *, offset: int = 0) -> None:
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = np.argwhere(~np.isfinite(data))[0]
        where = (int(bad[0]) + offset, *map(int, bad[1:]))
        raise src.fail(f"'{name}' holds NaN or inf (first at {list(where)})")


def _kind_words(kinds: str) -> str:
    words = {"i": "signed integers", "u": "unsigned integers", "f": "floats", "O": "strings", "S": "strings"}
    return " or ".join(words.get(k, k) for k in kinds)


def attrs_dict(src: Input) -> dict[str, Any]:
    return {key: _plain(value) for key, value in src.file.attrs.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "OS" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def parents_of(src: Input) -> dict[str, str]:
    raw = _text(src.file.attrs.get("parents"))
    try:
        return dict(json.loads(raw)) if raw else {}
    except (ValueError, TypeError):
        return {}


# ---------------------------------------------------------------------------------------------- writing


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
            raise AlcliError(f"cannot write ({_why(exc)})", display_output(path)) from None
        try:
            if path == STDIO:
                with open(tmp, "rb") as fh:
                    shutil.copyfileobj(fh, sys.stdout.buffer, _CHUNK)
                sys.stdout.buffer.flush()
                _remove(tmp)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
                os.replace(tmp, path)
                temp_files.discard(tmp)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise AlcliError(f"cannot write ({_why(exc)})", display_output(path)) from None
    except BaseException:
        _remove(tmp)
        raise


# Temporary files alive in this process: removed on failure, and by the interrupt watchdog (alcli.entry)
# when a Ctrl-C cannot reach the main thread in time (a long native call).
temp_files: set[str] = set()


def _remove(path: str) -> None:
    temp_files.discard(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def display_output(path: str) -> str:
    return "<stdout>" if path == STDIO else path


def _is_write_error(exc: OSError | RuntimeError) -> bool:
    """A failure of the output itself (full disk, file size limit, I/O error), as opposed to an OSError
    from reading an input inside the writer's block (those are AlcliErrors already)."""
    import errno

    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS):
        return True
    text = str(exc).lower()  # h5py may report HDF5 write failures without an errno
    return any(w in text for w in ("write", "no space", "file too large", "flush", "extend file"))


@contextlib.contextmanager
def create_output(path: str) -> Iterator[h5py.File]:
    """Yield a writable h5py.File; on success it lands at `path` (atomic rename) or on stdout."""
    _quiet_failed_writes()
    with atomic_path(path, ".h5") as tmp:
        handle = h5py.File(tmp, "w")
        try:
            yield handle
        except BaseException as exc:
            if isinstance(exc, (OSError, RuntimeError)) and _is_write_error(exc):
                _abandon(handle)
            else:
                try:
                    handle.close()
                except Exception:  # the first error is the one to report
                    _abandon(handle)
            raise
        try:
            handle.close()  # flushes: a full disk often shows here first
        except (OSError, RuntimeError) as exc:
            _abandon(handle)
            raise AlcliError(f"cannot write ({_why(exc)})", display_output(path)) from None


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
