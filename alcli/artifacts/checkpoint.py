"""`alcli.checkpoint`: a trained model as plain HDF5, never a pickle.

Datasets: `state/<name>` one per state-dict tensor (parameters and BN buffers), `mean` and `std` float32 C
(per-channel normalisation, [0, 1] units), `log/loss` and `log/seconds` float64 per epoch.
Attrs: arch, hparams (JSON: epochs, batch_size, lr, optimizer, augment, seed, device), input_shape (C, H, W),
num_classes, class_names, labeled_count, labeled_method, labeled_round, seconds, plus the common attrs;
parents = sha256 of the data set and the labelled set.

Loading only reads arrays: no code from the file is ever executed. Reading checks every tensor against
the architecture's expected names, shapes and dtypes (given by the caller, see alcli.learn.models).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from alcli.artifacts.io import Input, attrs_dict, check_format, name_text, open_input, parents_of, read_array
from alcli.artifacts.output import create_output, stamp

KIND = "checkpoint"
Expected = dict[str, tuple[tuple[int, ...], str]]


@dataclass
class Checkpoint:
    arch: str
    state: dict[str, np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: list[str]
    hparams: dict[str, Any] = field(default_factory=dict)
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    epoch_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labeled_count: int = 0
    labeled_method: str = ""
    labeled_round: int = -1
    seconds: float = 0.0
    parents: dict[str, str] = field(default_factory=dict)
    sha256: str = ""
    name: str = ""


def write_checkpoint(path: str, ckpt: Checkpoint) -> None:
    with create_output(path) as out:
        stamp(out, KIND, parents=ckpt.parents)
        out.attrs["arch"] = ckpt.arch
        out.attrs["hparams"] = json.dumps(ckpt.hparams, sort_keys=True)
        out.attrs["input_shape"] = np.asarray(ckpt.input_shape, np.int64)
        out.attrs["num_classes"] = int(ckpt.num_classes)
        out.attrs["class_names"] = np.array(ckpt.class_names, dtype=h5py.string_dtype())
        out.attrs["labeled_count"] = int(ckpt.labeled_count)
        out.attrs["labeled_method"] = ckpt.labeled_method
        out.attrs["labeled_round"] = int(ckpt.labeled_round)
        out.attrs["seconds"] = float(ckpt.seconds)
        group = out.create_group("state")
        for name, value in ckpt.state.items():
            group.create_dataset(name, data=np.asarray(value))
        out.create_dataset("mean", data=np.asarray(ckpt.mean, np.float32))
        out.create_dataset("std", data=np.asarray(ckpt.std, np.float32))
        out.create_dataset("log/loss", data=np.asarray(ckpt.loss, np.float64))
        out.create_dataset("log/seconds", data=np.asarray(ckpt.epoch_seconds, np.float64))


def read_checkpoint(path: str, expected: Callable[[str, tuple[int, int, int], int], Expected]) -> Checkpoint:
    """Read and validate. `expected(arch, input_shape, num_classes)` names every tensor the model has;
    it raises AlcliError for an unknown architecture."""
    with open_input(path) as src:
        return checkpoint_from(src, expected)


def checkpoint_from(src: Input, expected: Callable[[str, tuple[int, int, int], int], Expected]) -> Checkpoint:
    from alcli.errors import AlcliError

    check_format(src, KIND)
    attrs = attrs_dict(src)
    for key in ("arch", "input_shape", "num_classes", "class_names"):
        if key not in attrs:
            raise src.fail(f"missing attr '{key}'")
    arch = str(attrs["arch"])
    shape = attrs["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise src.fail(f"attr 'input_shape' must be three positive integers (C, H, W), got {shape!r}")
    num_classes = attrs["num_classes"]
    names = attrs["class_names"]
    if not isinstance(num_classes, int) or not isinstance(names, list) or len(names) != num_classes:
        raise src.fail(f"attrs 'num_classes' {num_classes!r} and 'class_names' do not agree")
    try:
        hparams = json.loads(attrs.get("hparams", "{}") or "{}")
    except ValueError:
        raise src.fail("attr 'hparams' is not valid JSON") from None
    try:
        want = expected(arch, (shape[0], shape[1], shape[2]), num_classes)
    except AlcliError as exc:
        raise src.fail(f"attr 'arch': {exc.message}") from None
    state = _read_state(src, want)
    chans = shape[0]
    stats = []
    for key in ("mean", "std"):
        arr = read_array(src, key, kinds="f", ndim=(1,), finite=True)
        if arr.shape != (chans,):
            raise src.fail(f"'{key}' has shape {arr.shape}, expected ({chans},) for {chans} channels")
        stats.append(arr.astype(np.float32))
    if np.any(stats[1] <= 0):
        raise src.fail("'std' must be positive")
    loss = read_array(src, "log/loss", kinds="f", ndim=(1,), required=False)
    secs = read_array(src, "log/seconds", kinds="f", ndim=(1,), required=False)
    return Checkpoint(
        arch=arch, state=state, mean=stats[0], std=stats[1], input_shape=(shape[0], shape[1], shape[2]),
        num_classes=num_classes, class_names=[str(c) for c in names], hparams=hparams,
        loss=np.zeros(0) if loss is None else loss, epoch_seconds=np.zeros(0) if secs is None else secs,
        labeled_count=int(attrs.get("labeled_count", 0)), labeled_method=str(attrs.get("labeled_method", "")),
        labeled_round=int(attrs.get("labeled_round", -1)), seconds=float(attrs.get("seconds", 0.0)),
        parents=parents_of(src), sha256=src.sha256, name=src.name,
    )  # fmt: skip


def _read_state(src: Input, want: Expected) -> dict[str, np.ndarray]:
    group = src.file.get("state")
    if not isinstance(group, h5py.Group):
        raise src.fail("missing group 'state' (the model's tensors)")
    present = {name_text(name) for name in group}
    for name in sorted(present - set(want)):
        raise src.fail(f"unexpected tensor 'state/{name}' for this architecture")
    state = {}
    for name, (shape, dtype) in want.items():
        node = group.get(name)
        if node is None:
            raise src.fail(f"missing tensor 'state/{name}'")
        if not isinstance(node, h5py.Dataset):
            raise src.fail(f"'state/{name}' is not a dataset")
        if tuple(node.shape) != tuple(shape):
            raise src.fail(f"tensor 'state/{name}' has shape {tuple(node.shape)}, expected {tuple(shape)}")
        if node.dtype != np.dtype(dtype):
            raise src.fail(f"tensor 'state/{name}' has dtype {node.dtype}, expected {dtype}")
        arr = read_array(src, f"state/{name}", kinds="fiu", ndim=(node.ndim,), finite=True)
        state[name] = np.asarray(arr)
    return state
