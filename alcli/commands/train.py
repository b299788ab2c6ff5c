"""`alcli train`: train a CNN from scratch on the labelled rows of a data set; write an HDF5 checkpoint."""

from __future__ import annotations

import click

from alcli import console
from alcli.options import INPUT, OUTPUT, Command

_ARCHS = ("small", "vgg16", "resnet18")


@click.command("train", cls=Command)
@click.argument("dataset", metavar="DATA.h5", type=INPUT)
@click.option("--labeled", "labeled_path", required=True, type=INPUT, metavar="LABELED.h5",
              help="The rows to train on (alcli.labeled); every one needs a label (not -1).")
@click.option("--arch", default="small", show_default=True, type=click.Choice(_ARCHS),
              help="small: a quick CNN; vgg16: batch-normed VGG16 (the paper's); resnet18: CIFAR-stem ResNet-18.")
@click.option("--epochs", type=int, default=15, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate.")
@click.option("--optimizer", default="rmsprop", show_default=True, type=click.Choice(("rmsprop", "adam", "sgd")),
              help="rmsprop as in the paper; sgd uses momentum 0.9 and weight decay 5e-4.")
@click.option("--augment/--no-augment", default=False, show_default=True,
              help="Random shifts of up to 2 pixels (and flips for colour images).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed and device → same weights.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(("auto", "cpu", "cuda")))
@click.option("--threads", type=int, default=0, show_default=True,
              help="torch CPU threads (0: torch's default, one per core). Weights are reproducible for the same"
                   " seed, device and thread count; 1 is often faster for the small CNN on a busy machine.")
@click.option("-o", "--output", required=True, type=OUTPUT, metavar="CKPT.h5",
              help="Where the checkpoint goes (- = stdout).")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON line on stdout.")
def command(dataset: str, labeled_path: str, arch: str, epochs: int, batch_size: int, lr: float, optimizer: str,
            augment: bool, seed: int, device: str, threads: int, output: str, as_json: bool) -> None:
    """Train ARCH from scratch on the rows of LABELED.h5 in DATA.h5 (an alcli.dataset or a plain
    images/labels HDF5 file). The checkpoint holds the weights, the normalisation and the training log."""
    import numpy as np

    from alcli import data, training
    from alcli.artifacts.checkpoint import write_checkpoint
    from alcli.artifacts.io import check_output
    from alcli.artifacts.labeled import read_labeled
    from alcli.errors import AlcliError

    if as_json and output == "-":
        raise AlcliError("--json prints to stdout, so the checkpoint needs -o FILE", "--json")
    check_output(output)
    if threads < 0:
        raise AlcliError(f"must be 0 (torch's default) or more, got {threads}", "--threads")
    if threads:
        import torch

        torch.set_num_threads(threads)
    recipe = training.Recipe(arch=arch, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                             augment=augment, seed=seed, device=device)
    training.check_recipe(recipe)
    ds = data.load(dataset)
    lab = read_labeled(labeled_path)
    if lab.pool_size != ds.n:
        raise AlcliError(f"is for a pool of {lab.pool_size} rows, {ds.name} has {ds.n}", lab.name)
    net, ckpt = training.train(ds, lab.indices, recipe, source=lab.name)
    ckpt.parents = {"dataset": ds.sha256, "labeled": lab.sha256}
    ckpt.labeled_method = str(lab.attrs.get("method", ""))
    ckpt.labeled_round = lab.next_round - 1
    write_checkpoint(output, ckpt)
    counts = np.bincount(ds.labels[lab.indices], minlength=ds.num_classes)
    info = {
        "arch": arch, "labeled_count": int(lab.indices.size), "epochs": epochs,
        "final_loss": float(ckpt.loss[-1]), "seconds": round(ckpt.seconds, 3),
        "device": ckpt.hparams["device"], "class_counts": dict(zip(ds.class_names, map(int, counts), strict=True)),
    }  # fmt: skip
    if as_json:
        console.emit_json(info)
    console.say(f"[bold]train {arch}[/]: {lab.indices.size} labelled images, {epochs} epochs on {info['device']}"
                f" · loss {ckpt.loss[0]:.4g} → {ckpt.loss[-1]:.4g} · {ckpt.seconds:.1f} s → {output}")
