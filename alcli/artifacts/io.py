"""Opening and validating HDF5 artifacts, with `-` for stdin; writing them lives in `output`.

HDF5 seeks, so it cannot be read from a pipe directly: stdin is spooled to a temporary file (constant
memory, hashed on the way). Every failure while reading an input becomes one AlcliError naming the file
(`reading`); code that runs inside an open input but does not read it goes in `not_reading`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from alcli.artifacts.output import (
    _CHUNK,
    FORMAT_PREFIX,
    SEAL_MAGIC,
    SEAL_SIZE,
    STDIO,
    remove_temp,
    temp_files,
)
from alcli.errors import AlcliError, short

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def display_name(path: str) -> str:
    """How a path is named in messages: stdin/stdout get a readable name."""
    return "<stdin>" if path == STDIO else path


def sha256_file(path: str) -> str:
    return _digests(path)[0]


def _digests(path: str) -> tuple[str, str]:
    """(sha256 of the whole file, sha256 of its bytes after the seal's user block, or "" when the file does
    not start with a seal: nothing to check it against), in one read of the file."""
    whole, content = hashlib.sha256(), hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            head = fh.read(SEAL_SIZE)
            whole.update(head)
            sealed = head.startswith(SEAL_MAGIC)
            for block in iter(lambda: fh.read(_CHUNK), b""):
                whole.update(block)
                if sealed:
                    content.update(block)
    except OSError as exc:
        raise AlcliError(f"cannot read ({exc.strerror or exc})", path) from None
    return whole.hexdigest(), content.hexdigest() if sealed else ""


class Input:
    """An opened input artifact: the h5py file, the name to use in messages, and its sha256."""

    def __init__(self, file: h5py.File, name: str, sha256: str) -> None:
        self.file = file
        self.name = name
        self.sha256 = sha256

    def fail(self, message: str) -> AlcliError:
        return AlcliError(message, self.name)

    @classmethod
    def named(cls, name: str, sha256: str = "") -> Input:
        """No file behind it: in-memory arrays (or a .npy matrix) checked as a file's, messages naming `name`."""
        return cls(None, name, sha256)  # type: ignore[arg-type]


def _spool_stdin() -> tuple[str, str, str]:
    """Copy stdin to a temporary file; return (path, sha256, sha256 after the seal's user block). Empty stdin
    is an error."""
    digest, content = hashlib.sha256(), hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix="alcli-stdin-", suffix=".h5")
    temp_files.add(tmp)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            stream = sys.stdin.buffer
            for block in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(block)
                content.update(block[max(0, SEAL_SIZE - size) :])
                out.write(block)
                size += len(block)
    except BaseException as exc:
        remove_temp(tmp)
        if isinstance(exc, OSError):
            raise AlcliError(f"cannot spool stdin to {tempfile.gettempdir()} ({exc.strerror or exc})",
                             "<stdin>") from None
        raise
    if size == 0:
        remove_temp(tmp)
        raise AlcliError("empty input: nothing arrived on stdin", "<stdin>")
    return tmp, digest.hexdigest(), content.hexdigest()


def _check_readable(path: str) -> None:
    if os.path.isdir(path):
        raise AlcliError("is a folder, not a file", path)
    if not os.path.exists(path):
        raise AlcliError("no such file", path)
    if os.path.getsize(path) == 0:
        raise AlcliError("empty file", path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != _HDF5_SIGNATURE and not head.startswith(SEAL_MAGIC[:8]) and not h5py.is_hdf5(path):
        raise AlcliError("not an HDF5 file", path)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HEX = frozenset(b"0123456789abcdef")
_SEAL_FLAWS_TOLERATED = 16  # of 512 bytes: damage to a seal, not another tool's user block


def _seal_flaws(block: bytes) -> int:
    """How many bytes of a file's first 512 differ from what `seal` writes (magic, 64 hex digits, a newline,
    NULs), when an HDF5 superblock follows them; a large number otherwise."""
    if len(block) < SEAL_SIZE + len(_HDF5_SIGNATURE) or block[SEAL_SIZE:] != _HDF5_SIGNATURE:
        return SEAL_SIZE
    end = len(SEAL_MAGIC) + 64
    flaws = sum(a != b for a, b in zip(block, SEAL_MAGIC, strict=False))
    flaws += sum(c not in _HEX for c in block[len(SEAL_MAGIC) : end])
    flaws += block[end] != 0x0A
    return flaws + sum(c != 0 for c in block[end + 1 : SEAL_SIZE])


def _check_seal(path: str, name: str, content: str) -> None:
    """An alcli artifact carries the sha256 of its content (`content`: the file's bytes after SEAL_SIZE) in its
    user block (alcli.artifacts.output.seal): a mismatch means the file was damaged after alcli wrote it, and
    HDF5 never sees it."""
    with open(path, "rb") as fh:
        block = fh.read(SEAL_SIZE + len(_HDF5_SIGNATURE))
    if not block.startswith(SEAL_MAGIC):
        if _seal_flaws(block) <= _SEAL_FLAWS_TOLERATED:  # an alcli seal with a few bytes flipped
            raise AlcliError("damaged: the seal alcli wrote in its first 512 bytes is altered", name)
        return  # written by another tool (or an alcli before 0.2): no seal to check
    block = block[:SEAL_SIZE]
    stored = block[len(SEAL_MAGIC) : len(SEAL_MAGIC) + 64].decode("ascii", "replace")
    if len(block) < SEAL_SIZE or content != stored:
        raise AlcliError("damaged: its content no longer matches the sha256 alcli sealed it with "
                         "(truncated or altered after it was written)", name)


@contextlib.contextmanager
def local_input(path: str) -> Iterator[tuple[str, str, str]]:
    """(real path, name for messages, sha256) of an input that exists on disk for the whole block: stdin
    (`-`) is spooled to a temporary file, removed when the block ends. The file is checked (an HDF5 file,
    its seal intact) but not opened: `open_input` opens it, and streaming readers reopen it by path."""
    name = display_name(path)
    spooled = None
    if path == STDIO:
        spooled, sha, content = _spool_stdin()
        real = spooled
        with open(real, "rb") as fh:
            head = fh.read(8)
        if head != _HDF5_SIGNATURE and not head.startswith(SEAL_MAGIC[:8]):
            remove_temp(real)
            raise AlcliError("not an HDF5 file", name)
    else:
        _check_readable(path)
        real = path
        sha, content = _digests(path)
    try:
        _check_seal(real, name, content)
        yield real, name, sha
    finally:
        if spooled is not None:
            remove_temp(spooled)


@contextlib.contextmanager
def open_local(real: str, name: str, sha: str) -> Iterator[Input]:
    """Open a file from `local_input` for reading; failures while reading become one AlcliError naming it."""
    try:
        handle = h5py.File(real, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        raise AlcliError(f"truncated or corrupt HDF5 file ({short(exc)})", name) from None
    with handle, reading(name):
        yield Input(handle, name, sha)


@contextlib.contextmanager
def open_input(path: str) -> Iterator[Input]:
    """Open an HDF5 artifact for reading (`-` = stdin). Never modifies the input."""
    with local_input(path) as (real, name, sha), open_local(real, name, sha) as src:
        yield src


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
    except _NotReading as carried:  # raised by code that does not read: a bug, with its own traceback
        raise carried.error from None
    except READ_ERRORS as exc:
        raise AlcliError(f"corrupt or malformed ({type(exc).__name__}: {short(exc)})", name) from None


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
        raise src.fail(f"cannot read '{name}': truncated or corrupt ({short(exc)})") from None
    if finite:
        check_finite(src, name, data)
    return data


def check_dataset(src: Input, name: str, node: h5py.Dataset | np.ndarray, *, kinds: str,
                  ndim: tuple[int, ...]) -> None:
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
    return {name_text(key): _plain(value) for key, value in src.file.attrs.items()}


def name_text(name: str | bytes) -> str:
    """An HDF5 object or attr name as text: h5py hands back names that are not UTF-8 (a damaged file, another
    tool) as bytes; their odd bytes become \\xNN escapes."""
    return name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else name


def pool_size_attr(src: Input, attrs: dict[str, Any]) -> int:
    """The `pool_size` attr of an artifact that indexes a pool (labeled, coords): a non-negative integer."""
    pool_size = attrs.get("pool_size")
    if not isinstance(pool_size, int) or pool_size < 0:
        raise src.fail(f"attr 'pool_size' must be a non-negative integer, got {pool_size!r}")
    return pool_size


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


class _NotReading(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def not_reading() -> Iterator[None]:
    """Inside `with open_input(...)`, code that does not read the input (merging, computing): its errors
    pass through `reading` unchanged, so a bug stays a bug (exit 1) instead of blaming the file."""
    try:
        yield
    except READ_ERRORS as exc:
        raise _NotReading(exc) from None


def feature_limit(dim: int) -> float:
    """The largest |value| for which every squared distance between D-dim rows stays finite in float32."""
    return float(np.sqrt(np.finfo(np.float32).max / (4.0 * dim))) / 2


def check_magnitude(block: np.ndarray, dim: int, name: str) -> None:
    """Features so large that squared distances overflow float32 (every distance would be inf) are bad input."""
    top = float(np.abs(block).max()) if block.size else 0.0
    if top > feature_limit(dim):
        raise AlcliError(f"'features' holds {top:.3g}: squared distances overflow float32 (|values| must stay "
                         f"below {feature_limit(dim):.3g} for {dim} dimensions; rescale them)", name)
