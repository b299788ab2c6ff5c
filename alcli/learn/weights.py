"""Pretrained weights from a local file: a torch state dict (`.pth`/`.pt`, read with torch.load(weights_only=True):
tensors and plain containers only, no code) or a `.safetensors` file (read here: the `safetensors` package is
not needed). Nothing is ever downloaded. Every problem is one AlcliError naming the file.

safetensors layout: 8 bytes little-endian header length L, L bytes of JSON {name: {dtype, shape,
data_offsets: [begin, end]}, optional "__metadata__": {str: str}}, then the tensors' raw little-endian bytes,
offsets counted from the end of the header.
"""

from __future__ import annotations

import json
import os
import re
import struct
from typing import Any

import numpy as np
import torch

from alcli.errors import AlcliError, short

SAFETENSORS_DTYPES: dict[str, Any] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": torch.bfloat16,
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}  # fmt: skip
_MAX_HEADER = 100 << 20


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, on the CPU, by name."""
    if os.path.isdir(path):
        raise AlcliError("is a folder, not a weights file", path)
    if not os.path.exists(path):
        raise AlcliError("no such file (weights are never downloaded: save them to a file first, see --help)", path)
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return _read_torch(path)


def _read_torch(path: str) -> dict[str, torch.Tensor]:
    import pickle
    import zipfile

    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        text = " ".join(str(exc).split())
        if "Unsupported global" in text or "This file can still be loaded" in text:
            raise AlcliError("holds more than tensors (a pickled object that torch.load(weights_only=True) refuses:"
                             " save the model's state_dict() instead)", path) from None
        found = re.search(r"WeightsUnpickler error: (.{1,80}?)(?: Check the documentation|$)", text)
        raise AlcliError(f"not a torch state dict file ({found.group(1) if found else short(exc)[:80]})",
                         path) from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise AlcliError(f"not a readable torch state dict file ({short(exc)[:120]})", path) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise AlcliError(f"holds a {type(obj).__name__}, not a state dict (names → tensors)", path)
    bad = next((k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise AlcliError(f"entry {bad!r} is not a named tensor: not a state dict", path)
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """A `.safetensors` file's tensors (checked: header, dtypes, shapes, offsets inside the file)."""
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise AlcliError("too short for a .safetensors file", path)
            (length,) = struct.unpack("<Q", head)
            if length > min(size - 8, _MAX_HEADER):
                raise AlcliError(f"not a .safetensors file (header length {length} for a {size}-byte file)", path)
            header = json.loads(fh.read(length).decode("utf-8"))
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
            base = 8 + length
            return {name: _tensor(fh, path, name, info, base, size) for name, info in header.items()
                    if name != "__metadata__"}
    except (ValueError, UnicodeError) as exc:
        raise AlcliError(f"not a .safetensors file (bad header: {short(exc)[:100]})", path) from None
    except OSError as exc:
        raise AlcliError(f"cannot read ({exc.strerror or exc})", path) from None


def _tensor(fh: Any, path: str, name: str, info: Any, base: int, size: int) -> torch.Tensor:
    if not isinstance(info, dict) or info.get("dtype") not in SAFETENSORS_DTYPES:
        got = info.get("dtype") if isinstance(info, dict) else info
        raise AlcliError(f"tensor {name!r} has dtype {got!r}, not one of {', '.join(SAFETENSORS_DTYPES)}", path)
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not (isinstance(shape, list) and all(isinstance(v, int) and v >= 0 for v in shape)):
        raise AlcliError(f"tensor {name!r} has shape {shape!r}, not a list of sizes", path)
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(v, int) for v in offsets)):
        raise AlcliError(f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end]", path)
    kind = SAFETENSORS_DTYPES[info["dtype"]]
    item = 2 if kind is torch.bfloat16 else kind.itemsize
    begin, end = offsets
    if not 0 <= begin <= end or base + end > size or end - begin != int(np.prod(shape)) * item:
        raise AlcliError(f"tensor {name!r}: data_offsets {offsets} do not fit its shape {shape} or the file", path)
    fh.seek(base + begin)
    raw = np.frombuffer(fh.read(end - begin), np.dtype("<u2") if kind is torch.bfloat16 else kind)
    tensor = torch.from_numpy(raw.astype(raw.dtype.newbyteorder("="), copy=True)).reshape(shape)
    return tensor.view(torch.bfloat16) if kind is torch.bfloat16 else tensor


def write_safetensors(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` as a `.safetensors` file (for tests and for users converting a .pth)."""
    names = {v: k for k, v in SAFETENSORS_DTYPES.items() if not isinstance(v, np.dtype)}
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, value in tensors.items():
        t = value.detach().cpu().contiguous()
        if t.dtype is torch.bfloat16:
            code, raw = names[torch.bfloat16], t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            arr = t.numpy()
            code = next(k for k, v in SAFETENSORS_DTYPES.items() if isinstance(v, np.dtype) and v == arr.dtype)
            raw = arr.astype(SAFETENSORS_DTYPES[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text)
        for raw in blobs:
            fh.write(raw)
