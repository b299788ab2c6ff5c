"""`alcli train`: train a CNN from scratch, or fine-tune a pretrained torchvision backbone, on the labelled rows
of a data set; write an HDF5 checkpoint."""

from __future__ import annotations

from typing import Any

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
@click.option("--backbone", metavar="NAME",
              help="Fine-tune this torchvision classification model (resnet18, resnet50, vit_b_16, ...) from"
                   " --weights instead of training --arch from scratch: its classifier is replaced by one for the"
                   " pool's classes.")
@click.option("--weights", "weights_path", type=INPUT, metavar="FILE",
              help="--backbone's pretrained weights, a local .pth/.pt state dict or .safetensors (never downloaded;"
                   " on a machine with internet: python -c \"import torch, torchvision; torch.save(torchvision.models"
                   ".resnet18(weights='DEFAULT').state_dict(), 'resnet18.pth')\"). The checkpoint records its sha256"
                   " and holds every tensor, so later commands do not need the file.")
@click.option("--freeze-backbone", is_flag=True, help="--backbone: train the new head only (a linear probe).")
@click.option("--image-size", type=int, default=224, show_default=True,
              help="--backbone: images are resized to this square size (bilinear, antialias) unless already at it.")
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
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes reading batches from DATA.h5 ahead of training (0: read in this process). The pool"
                   " is never loaded whole; the weights do not depend on this.")
@click.option("--exclude", "exclude_paths", multiple=True, type=INPUT, metavar="LABELED.h5",
              help="Rows never to train on, not even unlabelled or pseudo-labelled (e.g. the test split). Repeatable.")
@click.option("--semi-supervised", "semi", default="none", show_default=True,
              type=click.Choice(("none", "fixmatch")),
              help="fixmatch: also learn from every row that is neither labelled nor excluded (Sohn et al. 2020);"
                   " an epoch is then one pass over those unlabelled rows, and --augment is implied.")
@click.option("--threshold", type=float, default=0.95, show_default=True,
              help="FixMatch: confidence a weak view needs for its pseudo-label to count.")
@click.option("--mu", type=int, default=7, show_default=True,
              help="FixMatch: unlabelled images per labelled image in a batch.")
@click.option("--unlabeled-weight", type=float, default=1.0, show_default=True,
              help="FixMatch: weight of the unlabelled loss.")
@click.option("--pseudo-labels", "pseudo_path", type=INPUT, metavar="EMB.h5",
              help="CEAL: add the rows of EMB.h5 (from `alcli embed`) whose softmax entropy is below"
                   " --pseudo-threshold, with their predicted class, for this run only.")
@click.option("--pseudo-threshold", type=float, metavar="NATS",
              help="CEAL's δ: entropy (nats) below which a row is pseudo-labelled.")
@click.option("-o", "--output", required=True, type=OUTPUT, metavar="CKPT.h5",
              help="Where the checkpoint goes (- = stdout).")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON line on stdout.")
def command(dataset: str, labeled_path: str, arch: str, backbone: str | None, weights_path: str | None,
            freeze_backbone: bool, image_size: int, epochs: int, batch_size: int, lr: float, optimizer: str,
            augment: bool, seed: int, device: str, threads: int, workers: int, exclude_paths: tuple[str, ...],
            semi: str, threshold: float, mu: int, unlabeled_weight: float, pseudo_path: str | None,
            pseudo_threshold: float | None, output: str, as_json: bool) -> None:
    """Train ARCH from scratch on the rows of LABELED.h5 in DATA.h5 (an alcli.dataset or a plain
    images/labels HDF5 file). The checkpoint holds the weights, the normalisation and the training log.
    Weakly supervised: --semi-supervised fixmatch also learns from the unlabelled rows (all rows neither
    labelled nor --exclude'd); --pseudo-labels adds CEAL's confident rows with their predicted class.

    \b
    Backbone weights are never downloaded; save torchvision's to a file on a machine with internet:
      python -c "import torch, torchvision; torch.save(torchvision.models.resnet18(weights='DEFAULT')
        .state_dict(), 'resnet18.pth')"
    """
    import numpy as np

    from alcli.artifacts.checkpoint import write_checkpoint
    from alcli.artifacts.output import check_output
    from alcli.errors import AlcliError

    if as_json and output == "-":
        raise AlcliError("--json prints to stdout, so the checkpoint needs -o FILE", "--json")
    check_output(output)
    if threads < 0:
        raise AlcliError(f"must be 0 (torch's default) or more, got {threads}", "--threads")
    if (weights_path is not None or freeze_backbone) and backbone is None:
        raise AlcliError("goes with --backbone NAME", "--weights" if weights_path is not None else "--freeze-backbone")

    from alcli.learn import data, training  # torch: after the checks that need none

    if threads:
        import torch

        torch.set_num_threads(threads)
    if backbone is not None:
        from alcli.learn import backbones

        backbones.check_name(backbone)
        arch = backbones.arch_of(backbone)
    recipe = training.Recipe(arch=arch, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                             augment=augment, seed=seed, device=device, semi_supervised=semi, threshold=threshold,
                             mu=mu, unlabeled_weight=unlabeled_weight, workers=workers,
                             weights=weights_path or "", freeze_backbone=freeze_backbone, image_size=image_size)
    training.check_recipe(recipe)
    if (pseudo_path is None) != (pseudo_threshold is None):
        raise AlcliError("--pseudo-labels and --pseudo-threshold go together", "--pseudo-threshold")
    with data.open_pool(dataset) as ds:
        net, ckpt, lab, pseudo, stats = _train(ds, labeled_path, exclude_paths, recipe, pseudo_path, pseudo_threshold)
    ckpt.parents = {"dataset": ds.sha256, "labeled": lab.sha256}
    if pseudo is not None:
        ckpt.parents["pseudo_labels"] = pseudo.source
    ckpt.labeled_method = str(lab.attrs.get("method", ""))
    ckpt.labeled_round = lab.next_round - 1
    write_checkpoint(output, ckpt)
    counts = np.bincount(ds.labels[lab.indices], minlength=ds.num_classes)
    info = {
        "arch": arch, "labeled_count": int(lab.indices.size), "epochs": epochs,
        "final_loss": float(ckpt.loss[-1]), "seconds": round(ckpt.seconds, 3),
        "device": ckpt.hparams["device"], "class_counts": dict(zip(ds.class_names, map(int, counts), strict=True)),
        "semi_supervised": semi,
    }  # fmt: skip
    extra = ""
    if pseudo is not None:
        info["pseudo_count"] = int(pseudo.rows.size)
        extra += f" + {pseudo.rows.size} pseudo-labelled (entropy < {pseudo_threshold:g})"
    if stats:
        info.update(unlabeled_count=stats["unlabeled_count"], steps=stats["steps"],
                    mask_rate=round(stats["mask_rate"][-1], 4))
        extra += (f" + {stats['unlabeled_count']} unlabelled (fixmatch, {stats['steps']} steps; last epoch"
                  f" {100 * stats['mask_rate'][-1]:.0f}% above τ={threshold:g})")
    if as_json:
        console.emit_json(info)
    console.say(f"[bold]train {arch}[/]: {lab.indices.size} labelled images{extra}, {epochs} epochs on"
                f" {info['device']} · loss {ckpt.loss[0]:.4g} → {ckpt.loss[-1]:.4g} · {ckpt.seconds:.1f} s → {output}")


def _train(ds: Any, labeled_path: str, exclude_paths: tuple[str, ...], recipe: Any, pseudo_path: str | None,
           pseudo_threshold: float | None) -> tuple[Any, Any, Any, Any, dict]:
    """Check the labelled, excluded and pseudo-labelled rows against the open pool and train."""
    import numpy as np

    from alcli.artifacts.labeled import read_labeled
    from alcli.errors import AlcliError
    from alcli.learn import data, semisupervised, training

    lab = read_labeled(labeled_path)
    if lab.pool_size != ds.n:
        raise AlcliError(f"is for a pool of {lab.pool_size} rows, {ds.name} has {ds.n}", lab.name)
    everything = np.arange(ds.n, dtype=np.int64)
    excluded = np.setdiff1d(everything, data.exclude_rows(everything, exclude_paths, ds.n))
    both = np.intersect1d(lab.indices, excluded)
    if both.size:
        raise AlcliError(f"row {int(both[0])} is labelled in {lab.name} and excluded ({both.size} such rows)",
                         "--exclude")
    pseudo = None
    if pseudo_path is not None and pseudo_threshold is not None:
        pseudo = semisupervised.read_pseudo_labels(pseudo_path, pseudo_threshold, ds.n, ds.num_classes,
                                                   np.union1d(lab.indices, excluded))
    unlabeled = None
    if recipe.semi_supervised != "none":
        unlabeled = np.setdiff1d(everything, np.union1d(lab.indices, excluded))
    stats: dict = {}
    net, ckpt = training.train(ds, lab.indices, recipe, source=lab.name, pseudo=pseudo, unlabeled=unlabeled,
                               stats=stats)
    return net, ckpt, lab, pseudo, stats
