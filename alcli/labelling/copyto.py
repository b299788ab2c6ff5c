"""`alcli export --copy-to DIR`: the picked images as files for annotators, plus DIR/manifest.csv.

Each row's file is its id under DIR: the original file's bytes when the images root (`--images-root`,
else the folder in the data set's `source` attr that `pack` wrote) still holds ROOT/ID; otherwise the
row decoded from the artifact as PNG, under the id when it ends in .png and under ID.png when it does
not (row numbers, other extensions). `manifest.csv` (`file,id,row`) maps the files back to rows.

Overwrites: DIR may already hold files under the names alcli writes only when their content is what
alcli would write (so re-running an export is safe); any other file there is an error before anything
is written. DIR must not be the images root or the folder `pack` read, nor lie inside them (a later
`pack` would take the copies for new images).
"""

from __future__ import annotations

import csv
import filecmp
import io
import os
import shutil
from dataclasses import dataclass

import numpy as np

from alcli.artifacts.dataset import Dataset
from alcli.artifacts.output import atomic_path, same_file
from alcli.errors import AlcliError

MANIFEST_NAME = "manifest.csv"
_PACK_SOURCE = "alcli pack "


@dataclass
class Copy:
    file: str  # relative to DIR, '/' separators
    id: str
    row: int
    original: str | None  # the file to copy, or None: decode the row as PNG


def images_root(data: Dataset, given: str | None) -> str | None:
    """The folder the ids are relative to: `given`, else the one `pack` recorded when it still exists."""
    if given is not None:
        if not os.path.isdir(given):
            raise AlcliError("no such folder" if not os.path.exists(given) else "is not a folder", given)
        return given
    return pack_folder(data)


def pack_folder(data: Dataset) -> str | None:
    """The folder `pack` read (its `source` attr), when it still exists."""
    source = str(data.attrs.get("source", ""))
    if source.startswith(_PACK_SOURCE) and os.path.isdir(source[len(_PACK_SOURCE):]):
        return source[len(_PACK_SOURCE):]
    return None


def plan(data: Dataset, rows: np.ndarray, root: str | None) -> list[Copy]:
    """One Copy per row, in order; ids that are not plain relative paths cannot be file names."""
    ids = data.row_ids()
    copies, taken = [], {}
    for row in rows.tolist():
        name = ids[row]
        parts = name.split("/")
        if (name.startswith("/") or "\\" in name or any(ord(ch) < 32 for ch in name)
                or any(p in ("", ".", "..") for p in parts)):
            raise AlcliError(f"id {name!r} (row {row}) is not a plain relative path: it cannot name a file "
                             "under --copy-to", data.name)
        original = None
        if root is not None and data.ids is not None:
            candidate = os.path.join(root, *parts)
            original = candidate if os.path.isfile(candidate) else None
        file = name if original is not None or name.lower().endswith(".png") else name + ".png"
        if file in taken:
            raise AlcliError(f"rows {taken[file]} and {row} would both be copied to {file!r}", data.name)
        taken[file] = row
        copies.append(Copy(file, name, int(row), original))
    return copies


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def manifest(copies: list[Copy]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("file", "id", "row"))
    writer.writerows((c.file, c.id, c.row) for c in copies)
    return buf.getvalue()


def check(copies: list[Copy], dest: str, root: str | None, data: Dataset, outputs: list[str]) -> list[Copy]:
    """Refuse a DIR that is (inside) the images root or the folder `pack` read, holds a different file
    under a name alcli writes, or would have a copy land on another output; return the copies still to
    write (the rest are there)."""
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise AlcliError("is not a folder", dest)
    for folder in {root, pack_folder(data)} - {None}:
        real_root, real_dest = os.path.realpath(str(folder)), os.path.realpath(dest)
        if real_dest == real_root or real_dest.startswith(real_root.rstrip(os.sep) + os.sep):
            raise AlcliError(f"is inside the images root {folder}: a later `pack` would take the copies for "
                             "new images; copy to a folder outside it", dest)
    listing = os.path.join(dest, MANIFEST_NAME)
    for out in outputs:
        if same_file(listing, out):
            raise AlcliError(f"names {MANIFEST_NAME} of --copy-to: choose another output path", out)
    todo = []
    for copy in copies:
        target = os.path.join(dest, *copy.file.split("/"))
        for out in outputs:
            if same_file(target, out):
                raise AlcliError(f"the copy of row {copy.row} would overwrite this output", out)
        if not os.path.lexists(target):
            todo.append(copy)
            continue
        if not os.path.isfile(target):
            raise AlcliError("is in the way of a copy (not a plain file)", target)
        same = (filecmp.cmp(copy.original, target, shallow=False) if copy.original is not None
                else _read(target) == png_bytes(data.images[copy.row]))
        if not same:
            raise AlcliError("already exists with other content: export to an empty folder, or remove it",
                             target)
    if os.path.lexists(listing) and (not os.path.isfile(listing) or _read(listing) != manifest(copies).encode()):
        raise AlcliError("already exists with other content: export to an empty folder, or remove it", listing)
    return todo


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def write(copies: list[Copy], todo: list[Copy], dest: str, data: Dataset) -> dict[str, int]:
    """Write `todo` (each file atomically) and the manifest of all `copies`; return the counts."""
    os.makedirs(dest, exist_ok=True)
    counts = {"originals": 0, "decoded": 0, "unchanged": len(copies) - len(todo)}
    for copy in todo:
        target = os.path.join(dest, *copy.file.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with atomic_path(target, os.path.splitext(target)[1]) as tmp:
            if copy.original is not None:
                shutil.copyfile(copy.original, tmp)
                counts["originals"] += 1
            else:
                with open(tmp, "wb") as fh:
                    fh.write(png_bytes(data.images[copy.row]))
                counts["decoded"] += 1
    with atomic_path(os.path.join(dest, MANIFEST_NAME), ".csv") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(manifest(copies))
    return counts
