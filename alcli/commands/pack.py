"""`alcli pack`: a folder of image files → an alcli.dataset artifact (torchvision ImageFolder layout)."""

from __future__ import annotations

import os

import click
import numpy as np

from alcli import console
from alcli.images.folder import list_images, load_images, parse_size
from alcli.options import INPUT, OUTPUT, Command


@click.command("pack", cls=Command)
@click.argument("folder", metavar="FOLDER", type=INPUT)
@click.option("--unlabelled", "--unlabeled", "unlabelled", is_flag=True,
              help="No class subfolders: every image under FOLDER, at any depth, with label -1.")
@click.option("--size", "size_text", metavar="HxW", help="Resize every image to H×W (bilinear).")
@click.option("-o", "--output", required=True, type=OUTPUT, metavar="POOL.h5",
              help="The dataset artifact (- = stdout).")
def command(folder: str, unlabelled: bool, size_text: str | None, output: str) -> None:
    """Pack the images under FOLDER into an alcli.dataset: one subfolder per class (sorted names become
    class_names and labels 0..C-1, as torchvision's ImageFolder), or with --unlabelled every image file
    under FOLDER and its sub-folders (hidden names skipped), sorted by relative path. `ids` holds each
    image's path relative to FOLDER ('/' separators). Grey images stay one channel; any colour image
    makes the whole set RGB."""
    from alcli.artifacts.dataset import Dataset, write_dataset
    from alcli.artifacts.output import check_output

    check_output(output)
    size = parse_size(size_text)
    paths, labels, classes = list_images(folder, unlabelled)
    images = load_images(folder, paths, size)
    ds = Dataset(images, np.asarray(labels, np.int64), classes, ids=paths,
                 attrs={"source": f"alcli pack {os.path.abspath(folder)}"})
    write_dataset(output, ds)
    shape = "×".join(map(str, images.shape[1:]))
    what = "unlabelled" if unlabelled else f"{len(classes)} classes"
    console.say(f"[bold]pack[/]: {len(paths)} images ({shape}, {what}) → {output}")
