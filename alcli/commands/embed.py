"""`alcli embed`: penultimate-layer features (and softmax, MC-dropout, BADGE gradients) of data-set rows, from
a trained checkpoint or from a pretrained torchvision backbone's weights file."""

from __future__ import annotations

from typing import Any

import click

from alcli import console
from alcli.options import INPUT, OUTPUT, Command, input_path

_WEIGHTS_HELP = ("A local state dict for --backbone: .pth/.pt (read with torch.load(weights_only=True)) or"
                 " .safetensors. Nothing is downloaded; to save torchvision's published weights on a machine with"
                 " internet: python -c \"import torch, torchvision; torch.save(torchvision.models.resnet18("
                 "weights='DEFAULT').state_dict(), 'resnet18.pth')\"")


@click.command("embed", cls=Command)
@click.argument("dataset", metavar="DATA.h5", type=INPUT)
@click.argument("out_arg", metavar="[OUT.h5|-]", required=False, type=OUTPUT)
@click.option("--checkpoint", "checkpoint_path", type=INPUT, metavar="CKPT.h5",
              help="From `alcli train` (or give --backbone and --weights).")
@click.option("--backbone", metavar="NAME",
              help="A torchvision classification model (resnet18, resnet50, vit_b_16, convnext_tiny, ...): write"
                   " the input of its final classification layer as features (512-d for resnet18), no probs.")
@click.option("--weights", "weights_path", type=INPUT, metavar="FILE", help=_WEIGHTS_HELP)
@click.option("--image-size", type=int, default=224, show_default=True,
              help="--backbone: images are resized to this square size (bilinear, antialias) unless already at it.")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(("fp32", "fp16", "bf16")),
              help="Autocast the network (fp16: CUDA only); on CUDA also channels_last. Features are stored float32.")
@click.option("--indices", "indices_path", type=input_path(("all",)), default="all", show_default=True,
              metavar="all|LABELED.h5",
              help="Which rows to embed: all, or the rows of an alcli.labeled artifact.")
@click.option("--exclude", "exclude_paths", type=INPUT, multiple=True, metavar="LABELED.h5",
              help="Rows to leave out (e.g. the test split). Repeatable.")
@click.option("--mc-samples", type=int, default=0, show_default=True,
              help="Also write T dropout-on passes as mc_probs (T×N×C), for BALD/entropy baselines.")
@click.option("--grad-embedding", is_flag=True, help="Also write BADGE gradient embeddings (N × C·D).")
@click.option("--batch-size", type=int, metavar="N",
              help="Images per batch. Default: as many pixels as 32 images of 224×224, at most 256 (256 for small"
                   " images, 32 at 224²): memory grows with the batch, the speed on a CPU hardly.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes reading batches from DATA.h5 ahead of the model (0: read in this process).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the MC-dropout masks.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(("auto", "cpu", "cuda")))
@click.option("-o", "--output", type=OUTPUT, metavar="OUT.h5",
              help="Where the embeddings go (or give it as the second argument); - or none is stdout, to pipe"
                   " into `alcli select -`.")
@click.option("--scheduler", envvar="ALCLI_SCHEDULER", metavar="ADDRESS|local[:N]",
              help="Embed on a Dask cluster (one part per worker, combined into one artifact); the workers "
                   "must see DATA.h5 and CKPT.h5 at the same paths. [env ALCLI_SCHEDULER]")
def command(dataset: str, out_arg: str | None, checkpoint_path: str | None, backbone: str | None,
            weights_path: str | None, image_size: int, precision: str, indices_path: str,
            exclude_paths: tuple[str, ...], mc_samples: int, grad_embedding: bool, batch_size: int | None, workers: int,
            seed: int, device: str, output: str | None, scheduler: str | None) -> None:
    """Run CKPT.h5 (or a pretrained --backbone with its --weights) over rows of DATA.h5 and write an
    alcli.embeddings artifact: `features` (the penultimate activations, the core-set distance space), and
    with a checkpoint `probs`, optionally `mc_probs` and `grad_features`.

    \b
    Backbone weights are never downloaded; save torchvision's to a file on a machine with internet:
      python -c "import torch, torchvision; torch.save(torchvision.models.resnet18(weights='DEFAULT')
        .state_dict(), 'resnet18.pth')"
    """
    import time

    import numpy as np

    from alcli.artifacts.output import check_output
    from alcli.errors import AlcliError

    if out_arg is not None and output is not None and out_arg != output:
        raise AlcliError(f"two outputs given ({out_arg} and -o {output}): give one", "--output")
    output = output or out_arg or "-"
    check_output(output)
    _check_source(checkpoint_path, backbone, weights_path, mc_samples, grad_embedding, scheduler)  # before torch

    from alcli.learn import data, embedding, models

    auto = batch_size is None  # chosen from the size the network sees the images at, once the pool is open
    opts = embedding.EmbedOptions(batch_size=1 if auto else batch_size, mc_samples=mc_samples,
                                  grad_embedding=grad_embedding, seed=seed, workers=workers, precision=precision)
    embedding.check_options(opts)
    dev = models.resolve_device(device)
    embedding.check_device(opts, dev)
    model = _model(checkpoint_path, backbone, weights_path, image_size, device)
    with data.open_pool(dataset) as ds:
        if auto:
            from alcli.learn import training

            side = (image_size, image_size) if backbone else training.seen_size(model[1], ds)
            opts.batch_size = embedding.auto_batch_size(*side)
        rows = np.arange(ds.n, dtype=np.int64) if indices_path == "all" else data.read_rows(indices_path, ds.n,
                                                                                              "--indices")
        rows = data.exclude_rows(rows, exclude_paths, ds.n)
        if rows.size == 0:
            raise AlcliError("no rows left to embed after --exclude", "--exclude")
        t0 = time.perf_counter()
        if backbone:
            trunk, dim, sha = model
            attrs = {"dataset": ds.name, "arch": backbone, "backbone": backbone, "weights_sha256": sha,
                     "image_size": image_size, "precision": precision}
            embedding.embed_features(output, trunk, dim, ds, rows, opts, dev, attrs, {"dataset": ds.sha256})
            arch = backbone
        else:
            from alcli.learn import training

            net, ckpt = model
            training.check_compatible(ckpt, ds)
            if scheduler:
                from alcli.scale import distributed_embed

                distributed_embed.embed(scheduler, output, dataset, checkpoint_path, rows, opts, device)
            else:
                embedding.embed(output, net, ckpt, ds, rows, opts, dev)
            arch, dim = ckpt.arch, net.feature_dim
        secs = time.perf_counter() - t0
    extra = "".join([f" · mc_probs T={mc_samples}" if mc_samples else "", " · grad_features" if grad_embedding else "",
                     f" · {precision}" if precision != "fp32" else ""])
    console.say(f"[bold]embed {arch}[/]: {rows.size} of {ds.n} rows → {dim}-d features{extra} on {dev.type}"
                f" in batches of {opts.batch_size} · {secs:.1f} s ({rows.size / max(secs, 1e-9):.0f} images/s)"
                f" → {output}")


def _check_source(checkpoint_path: str | None, backbone: str | None, weights_path: str | None, mc_samples: int,
                  grad_embedding: bool, scheduler: str | None) -> None:
    from alcli.errors import AlcliError

    if (checkpoint_path is None) == (backbone is None):
        raise AlcliError("give either --checkpoint CKPT.h5 or --backbone NAME --weights FILE", "--checkpoint")
    if backbone is None:
        if weights_path is not None:
            raise AlcliError("goes with --backbone (a checkpoint holds its own weights)", "--weights")
        return
    if weights_path is None:
        raise AlcliError("needs --weights FILE, a local state dict (nothing is downloaded; see --help)", "--backbone")
    for flag, on in (("--mc-samples", mc_samples), ("--grad-embedding", grad_embedding),
                     ("--scheduler", scheduler)):
        if on:
            raise AlcliError("needs a checkpoint with a trained head (--checkpoint), not a bare --backbone", flag)


def _model(checkpoint_path: str | None, backbone: str | None, weights_path: str | None, image_size: int,
           device: str) -> Any:
    """(net, checkpoint) from a checkpoint, or (trunk, feature width, weights sha256) from a backbone."""
    if checkpoint_path is not None:
        from alcli.learn import training

        return training.load_model(checkpoint_path, device)
    from alcli.learn import backbones

    assert backbone is not None and weights_path is not None
    return backbones.pretrained(backbone, weights_path, image_size)
