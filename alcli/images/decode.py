"""Decoding one image file the way `alcli pack` stores it: the header probe (size, colour, EXIF orientation,
without decoding pixels) and the full decode (JPEG draft-mode downscaling, EXIF orientation, mode, resize
to the target with --fit). It runs inside the decoder worker processes, so it imports only PIL (no numpy,
no h5py: each worker stays small); the same functions run in-process with --workers 1, so serial and
parallel runs give the same bytes.

A file that cannot be read is not an exception here: it comes back as ("bad", reason) so the parent can
name every unreadable file in one line (or skip them) instead of stopping at the first.
"""

from __future__ import annotations

import math
import mmap
import os
import warnings

FITS = ("stretch", "crop", "pad")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
_PALETTE_MODES = ("P", "PA")
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees
_TURNS = (2, 3, 4, 5, 6, 7, 8)  # EXIF orientations that ImageOps.exif_transpose acts on
_ORIENTATION = 0x0112

Probe = tuple  # ("ok", height, width, colour) or ("bad", reason)
Decoded = tuple  # ("ok", height, width, raw bytes) or ("bad", reason)
Placed = tuple  # ("ok", height, width, bytes placed in the shared buffer: 0 when not a row's size) or ("bad", reason)


def probe_many(folder: str, rels: list[str]) -> list[Probe]:
    return [probe(os.path.join(folder, rel)) for rel in rels]


_buffer: mmap.mmap | None = None  # where decode_into puts rows in this process


def use_buffer(buffer: mmap.mmap) -> mmap.mmap:
    """Rows of decode_into go to `buffer` (in a decoder worker: the one it shares with the parent)."""
    global _buffer
    _buffer = buffer
    return buffer


def local_buffer(nbytes: int) -> mmap.mmap:
    """A new buffer of `nbytes` for decoding in-process (one worker), used from now on."""
    return use_buffer(mmap.mmap(-1, max(1, nbytes)))


def decode_into(folder: str, rels: list[str], mode: str, size: tuple[int, int] | None, fit: str, offset: int,
                row_bytes: int) -> list[Placed]:
    """Decode `rels` into this process's row buffer (use_buffer), the i-th readable one at
    `offset + i * row_bytes`; an image whose bytes are not `row_bytes` (another size, without --size) is
    reported with its size and not placed."""
    if _buffer is None:
        raise RuntimeError("no row buffer: use_buffer or local_buffer first")
    buffer, out = _buffer, []
    for rel in rels:
        result = decode(os.path.join(folder, rel), mode, size, fit)
        if result[0] == "ok":
            data = result[3]
            placed = len(data) if len(data) == row_bytes else 0
            if placed:
                buffer[offset:offset + placed] = data
                offset += placed
            result = ("ok", result[1], result[2], placed)
        out.append(result)
    return out


def probe(path: str) -> Probe:
    """The image's height and width as stored after its EXIF orientation, and whether it holds colour, from
    its header (palette images with colours in their palette are decoded to see which are used)."""
    from PIL import Image

    try:
        if os.path.getsize(path) == 0:
            return ("bad", "empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                width, height = img.size
                if _orientation(img) in _SWAPS_AXES:
                    width, height = height, width
                return ("ok", height, width, _colour(img))
    except Exception as exc:  # any failure of PIL on this file's bytes: the file is unreadable
        return ("bad", _reason(exc))


def decode(path: str, mode: str, size: tuple[int, int] | None, fit: str) -> Decoded:
    """The image as `mode` ("L" or "RGB") raw bytes, turned upright (EXIF), resized to `size` (H, W) with `fit`."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                if size is not None and img.format == "JPEG":
                    target = size[::-1] if _orientation(img) in _SWAPS_AXES else size
                    img.draft(None, _draft_request(img.size, target, fit))
                img.load()
                # exif_transpose copies even an upright image (0.4 of decode's 1.3-1.7 ms a 256x256 photo):
                # called only when the orientation turns or flips; convert only when the mode differs
                upright = ImageOps.exif_transpose(img) if _loaded_orientation(img) in _TURNS else img
                out = upright if upright.mode == mode else upright.convert(mode)
                if size is not None:
                    out = _resize(out, size, fit)
                return ("ok", out.height, out.width, out.tobytes())
    except Exception as exc:  # any failure of PIL on this file's bytes (truncated, corrupt): unreadable
        return ("bad", _reason(exc))


def _resize(img: object, size: tuple[int, int], fit: str) -> object:
    from PIL import Image, ImageOps

    box = (size[1], size[0])
    if fit == "crop":  # scale to cover, centre crop
        return ImageOps.fit(img, box, Image.Resampling.BILINEAR)  # type: ignore[arg-type]
    if fit == "pad":  # scale to fit, centre on black
        return ImageOps.pad(img, box, Image.Resampling.BILINEAR, color=0)  # type: ignore[arg-type]
    return img.resize(box, Image.Resampling.BILINEAR)  # type: ignore[attr-defined]


def _draft_request(stored: tuple[int, int], target: tuple[int, int], fit: str) -> tuple[int, int]:
    """The (width, height) a JPEG must at least decode to (draft picks a 1/2, 1/4, 1/8 scale no smaller) so
    that the exact resize to `target` (H, W) with `fit` never enlarges the draft."""
    (w, h), (th, tw) = stored, target
    if fit == "stretch":
        return tw, th
    scale = max(tw / w, th / h) if fit == "crop" else min(tw / w, th / h)
    return max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))


def _orientation(img: object) -> int:
    """The EXIF orientation from the header only (a PNG whose eXIf chunk follows the pixels reads as 1 here;
    the decode honours it all the same)."""
    from PIL import Image

    try:
        exif = Image.Image.getexif(img) if getattr(img, "format", None) == "PNG" else img.getexif()  # type: ignore[attr-defined]
        return int(exif.get(_ORIENTATION, 1) or 1)
    except Exception:  # a damaged EXIF block: the image is still an image, upright as stored
        return 1


def _loaded_orientation(img: object) -> int:
    """The EXIF orientation of a loaded image, where ImageOps.exif_transpose reads it; a damaged EXIF block
    reads as upright (as in the header pass)."""
    try:
        return int(img.getexif().get(_ORIENTATION, 1) or 1)  # type: ignore[attr-defined]
    except Exception:
        return 1


def _colour(img: object) -> bool:
    mode = img.mode  # type: ignore[attr-defined]
    if mode in _GREY_MODES:
        return False
    if mode not in _PALETTE_MODES:
        return True
    palette = img.getpalette() or []  # type: ignore[attr-defined]
    if all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3)):
        return False
    from PIL import ImageChops

    red, green, blue = img.convert("RGB").split()  # type: ignore[attr-defined]
    return ImageChops.difference(red, green).getbbox() is not None or \
        ImageChops.difference(green, blue).getbbox() is not None


def _reason(exc: BaseException) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image"
    text = " ".join(str(exc).split())[:80]
    return text or type(exc).__name__


def worker_init() -> None:
    """In each decoder process: Ctrl-C and SIGTERM (to the whole process group, as `timeout` sends it) are the
    parent's alone (it kills the workers on its way out; a worker whose parent is gone ends at its next
    read or write on its pipe); warnings stay quiet."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    warnings.simplefilter("ignore")
