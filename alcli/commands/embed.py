"""`alcli embed`: penultimate-layer features (and softmax, MC-dropout, BADGE gradients) of data-set rows."""

from __future__ import annotations

import click

from alcli import console
from alcli.options import INPUT, OUTPUT, Command, input_path


@click.command("embed", cls=Command)
@click.argument("dataset", metavar="DATA.h5", type=INPUT)
@click.argument("out_arg", metavar="[OUT.h5|-]", required=False, type=OUTPUT)
@click.option("--checkpoint", "checkpoint_path", required=True, type=INPUT, metavar="CKPT.h5",
              help="From `alcli train`.")
@click.option("--indices", "indices_path", type=input_path(("all",)), default="all", show_default=True,
              metavar="all|LABELED.h5",
              help="Which rows to embed: all, or the rows of an alcli.labeled artifact.")
@click.option("--exclude", "exclude_paths", type=INPUT, multiple=True, metavar="LABELED.h5",
              help="Rows to leave out (e.g. the test split). Repeatable.")
@click.option("--mc-samples", type=int, default=0, show_default=True,
              help="Also write T dropout-on passes as mc_probs (T×N×C), for BALD/entropy baselines.")
@click.option("--grad-embedding", is_flag=True, help="Also write BADGE gradient embeddings (N × C·D).")
@click.option("--batch-size", type=int, default=256, show_default=True)
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
def command(dataset: str, out_arg: str | None, checkpoint_path: str, indices_path: str,
            exclude_paths: tuple[str, ...], mc_samples: int, grad_embedding: bool, batch_size: int, workers: int,
            seed: int, device: str, output: str | None, scheduler: str | None) -> None:
    """Run CKPT.h5 over rows of DATA.h5 and write an alcli.embeddings artifact: `features` (the
    penultimate activations, the core-set distance space), `probs`, and optionally `mc_probs` and
    `grad_features`."""
    import time

    import numpy as np

    from alcli.artifacts.output import check_output
    from alcli.errors import AlcliError
    from alcli.learn import data, embedding, models, training

    if out_arg is not None and output is not None and out_arg != output:
        raise AlcliError(f"two outputs given ({out_arg} and -o {output}): give one", "--output")
    output = output or out_arg or "-"
    check_output(output)
    opts = embedding.EmbedOptions(batch_size=batch_size, mc_samples=mc_samples, grad_embedding=grad_embedding,
                                  seed=seed, workers=workers)
    embedding.check_options(opts)
    dev = models.resolve_device(device)
    net, ckpt = training.load_model(checkpoint_path, device)
    with data.open_pool(dataset) as ds:
        training.check_compatible(ckpt, ds)
        rows = np.arange(ds.n, dtype=np.int64) if indices_path == "all" else data.read_rows(indices_path, ds.n,
                                                                                              "--indices")
        rows = data.exclude_rows(rows, exclude_paths, ds.n)
        if rows.size == 0:
            raise AlcliError("no rows left to embed after --exclude", "--exclude")
        t0 = time.perf_counter()
        if scheduler:
            from alcli.scale import distributed_embed

            distributed_embed.embed(scheduler, output, dataset, checkpoint_path, rows, opts, device)
        else:
            embedding.embed(output, net, ckpt, ds, rows, opts, dev)
        secs = time.perf_counter() - t0
    extra = "".join([f" · mc_probs T={mc_samples}" if mc_samples else "", " · grad_features" if grad_embedding else ""])
    console.say(f"[bold]embed {ckpt.arch}[/]: {rows.size} of {ds.n} rows → {net.feature_dim}-d features{extra}"
                f" · {secs:.1f} s ({rows.size / max(secs, 1e-9):.0f} images/s) → {output}")
