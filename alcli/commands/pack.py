"""`alcli pack`: a folder of image files → an alcli.dataset artifact (torchvision ImageFolder layout)."""

from __future__ import annotations

import click

from alcli import console
from alcli.images.decode import FITS
from alcli.images.folder import parse_size
from alcli.options import INPUT, OUTPUT, Command


@click.command("pack", cls=Command)
@click.argument("folder", metavar="FOLDER", type=INPUT)
@click.option("--unlabelled", "--unlabeled", "unlabelled", is_flag=True,
              help="No class subfolders: every image under FOLDER, at any depth, with label -1.")
@click.option("--size", "size_text", metavar="HxW", help="Resize every image to H×W (bilinear; see --fit).")
@click.option("--fit", type=click.Choice(FITS), default="stretch", show_default=True,
              help="With --size: stretch to H×W; crop = scale to cover, then centre crop; "
                   "pad = scale to fit, then centre on black.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Decoder processes (default: the cores this process may use). The output does not depend on it.")
@click.option("--skip-unreadable", is_flag=True,
              help="Leave out files that cannot be decoded (empty, truncated, not images) and record them in the "
                   "artifact (skipped_ids, skipped_reasons); without it they are an error naming them.")
@click.option("-o", "--output", required=True, type=OUTPUT, metavar="POOL.h5",
              help="The dataset artifact (- = stdout: no resume).")
def command(folder: str, unlabelled: bool, size_text: str | None, fit: str, workers: int | None,
            skip_unreadable: bool, output: str) -> None:
    """Pack the images under FOLDER into an alcli.dataset: one subfolder per class (sorted names become
    class_names and labels 0..C-1, as torchvision's ImageFolder), or with --unlabelled every image file
    under FOLDER and its sub-folders (hidden names skipped), sorted by relative path. `ids` holds each
    image's path relative to FOLDER ('/' separators). Images are turned upright (EXIF orientation). Grey
    images stay one channel; any colour image makes the whole set RGB. Without --size every image must
    have the same size.

    Decoding runs in parallel and streams to disk (memory stays small). An interrupted or failed run keeps
    its progress in POOL.h5.partial: the same command again continues from there (other files or options
    start over); with -o - (stdout) there is no resume."""
    from alcli.artifacts.output import check_output
    from alcli.images.pack import pack_folder

    check_output(output)
    size = parse_size(size_text)
    packed = pack_folder(folder, output, unlabelled=unlabelled, size=size, fit=fit, workers=workers,
                         skip_unreadable=skip_unreadable)
    shape = "×".join(map(str, packed.shape[1:]))
    what = "unlabelled" if unlabelled else f"{len(packed.classes)} classes"
    skipped = f", {len(packed.skipped)} unreadable skipped" if packed.skipped else ""
    resumed = f", resumed after {packed.resumed}" if packed.resumed else ""
    console.say(f"[bold]pack[/]: {packed.rows} images ({shape}, {what}{skipped}{resumed}) → {output}")
    for rel, why in packed.skipped[:10]:
        console.say(f"  skipped {rel}: {why}")
    if len(packed.skipped) > 10:
        console.say(f"  … and {len(packed.skipped) - 10} more (skipped_ids in the artifact)")
