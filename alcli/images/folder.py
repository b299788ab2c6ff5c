"""Image files on disk: which files are images, and how a folder lists as a pool (ImageFolder rules or an
unlabelled tree). `alcli pack` and `alcli label` (folder answers) share it; decoding is alcli.images.decode."""

from __future__ import annotations

import os

from alcli.errors import AlcliError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_images(folder: str, unlabelled: bool) -> tuple[list[str], list[int], list[str]]:
    """(relative paths, labels, class names) in sorted order; ImageFolder rules: one subfolder per class
    (its name is the class name), or with `unlabelled` every image file under `folder` (label -1)."""
    if not os.path.isdir(folder):
        raise AlcliError("no such folder" if not os.path.exists(folder) else "is not a folder", folder)

    def images_in(sub: str) -> list[str]:
        found = []
        for root, dirs, files in os.walk(sub):
            dirs.sort()
            found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(EXTENSIONS)]
        return found

    if unlabelled:
        files = unlabelled_ids(folder)
        if not files:
            raise AlcliError("holds no image files in it or its sub-folders (" + ", ".join(EXTENSIONS) + ")",
                             folder)
        return files, [-1] * len(files), []
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if not classes:
        raise AlcliError("has no class subfolders (one per class); use --unlabelled for a pool without classes", folder)
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = images_in(os.path.join(folder, name))
        paths += [os.path.relpath(p, folder) for p in found]
        labels += [label] * len(found)
    if not paths:
        raise AlcliError("holds no image files in its class subfolders", folder)
    return paths, labels, classes


def unlabelled_ids(folder: str) -> list[str]:
    """Every image file under `folder`, at any depth, as its path relative to `folder` joined with '/',
    sorted by that text (code points: the same order on every machine and file system). Hidden files and
    folders (names starting with '.') are skipped; links to files are followed, links to folders are not."""
    ids = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(root, folder)
        parts = [] if rel == os.curdir else rel.split(os.sep)
        for name in files:
            if name.startswith(".") or not name.lower().endswith(EXTENSIONS):
                continue
            if not os.path.isfile(os.path.join(root, name)):
                continue
            path = "/".join([*parts, name])
            try:
                path.encode("utf-8")
            except UnicodeEncodeError:
                raise AlcliError("file name is not valid UTF-8: rename it", os.path.join(root, name)) from None
            ids.append(path)
    return sorted(ids)


def parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise AlcliError(f"expected HxW such as 32x32, got {text!r}", "--size")
    return int(parts[0]), int(parts[1])
