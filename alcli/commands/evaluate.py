"""`alcli evaluate`: accuracy, per-class accuracy, loss and confusion matrix of a checkpoint on test rows."""

from __future__ import annotations

import click

from alcli import console
from alcli.options import INPUT, OUTPUT, Command


@click.command("evaluate", cls=Command)
@click.argument("checkpoint_path", metavar="CKPT.h5", type=INPUT)
@click.argument("dataset", metavar="TEST_DATA.h5", type=INPUT)
@click.option("--indices", "indices_path", type=INPUT, metavar="LABELED.h5",
              help="Score only these rows of TEST_DATA (an alcli.labeled artifact, e.g. the test split).")
@click.option("--batch-size", type=int, metavar="N",
              help="Images per batch. Default: as many pixels as 32 images of 224×224, at most 256 (see embed).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes reading batches from TEST_DATA.h5 ahead of the model (0: read in this process).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(("auto", "cpu", "cuda")))
@click.option("-o", "--output", type=OUTPUT, metavar="REPORT.h5", help="Write an alcli.report artifact (- = stdout).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON line on stdout.")
def command(checkpoint_path: str, dataset: str, indices_path: str | None, batch_size: int | None, workers: int,
            device: str, output: str | None, as_json: bool) -> None:
    """Score CKPT.h5 on TEST_DATA.h5 (every scored row needs a label). A table goes to stderr."""
    import numpy as np

    from alcli.artifacts.output import check_output
    from alcli.artifacts.report import write_report
    from alcli.errors import AlcliError
    from alcli.learn import data, embedding, evaluation, models, training

    if as_json and output == "-":
        raise AlcliError("--json prints to stdout, so the report needs -o FILE", "--json")
    if output:
        check_output(output)
    if batch_size is not None and batch_size < 1:
        raise AlcliError(f"must be at least 1, got {batch_size}", "--batch-size")
    dev = models.resolve_device(device)
    net, ckpt = training.load_model(checkpoint_path, device)
    if workers < 0:
        raise AlcliError(f"must be 0 (read in this process) or more, got {workers}", "--workers")
    with data.open_pool(dataset) as ds:
        training.check_compatible(ckpt, ds)
        if batch_size is None:
            batch_size = embedding.auto_batch_size(*training.seen_size(ckpt, ds))
        rows = np.arange(ds.n, dtype=np.int64) if indices_path is None else data.read_rows(indices_path, ds.n,
                                                                                             "--indices")
        report = evaluation.evaluate(net, ckpt, ds, rows, batch_size=batch_size, device=dev, source=ds.name,
                                     workers=workers)
    if indices_path is not None:
        from alcli.artifacts.io import sha256_file

        report.parents["indices"] = sha256_file(indices_path)
    if output:
        write_report(output, report)
    if as_json:
        console.emit_json(console.clean_nan(report.summary()))
    where = f" (round {report.attrs['round']}, {report.attrs['method']})" if report.attrs.get("method") else ""
    console.say(f"[bold]evaluate {ckpt.arch}[/] trained on {report.labeled_count} labelled{where}:"
                f" accuracy [bold]{report.accuracy:.4f}[/] · mean loss {report.mean_loss:.4g}"
                f" · {report.n_test} test images")
    rows_t = [(name, int(report.confusion[i].sum()), float(report.per_class_accuracy[i]))
              for i, name in enumerate(report.class_names)]
    console.show(console.table("per class", ["class", "n", "accuracy"], rows_t))
