"""`alcli select`: choose the next batch to label from an embeddings artifact."""

from __future__ import annotations

from typing import Any

import click
import numpy as np
from click.core import ParameterSource

from alcli import console
from alcli.artifacts import STDIO, LabeledSet, check_output, read_dataset, read_labeled, write_labeled
from alcli.artifacts.embeddings import OPTIONAL
from alcli.errors import AlcliError
from alcli.options import INPUT, OUTPUT, Command
from alcli.scale.distributed import select_runner
from alcli.selection import REGISTRY, Strategy
from alcli.selection.run import Round, get_strategy, resolve_params, select_round


def _method_help() -> str:
    lines = "\n".join(f"  {name:<20} {REGISTRY[name].summary}" for name in sorted(REGISTRY))
    return f"\n\b\nMethods:\n{lines}"


def _strategy_options(func: Any) -> Any:
    """Every strategy's own options, declared next to the strategy (selection/*.py)."""
    seen: set[str] = set()
    for strat in sorted(REGISTRY.values(), key=lambda s: s.name, reverse=True):
        for param in strat.params:
            if param.name in seen:
                continue
            seen.add(param.name)
            flag = "--" + param.name.replace("_", "-")
            help_text = f"[{strat.name}] {param.help}"
            if param.flag:
                option = click.option(flag, param.name, is_flag=True, default=param.default, help=help_text)
            else:
                option = click.option(flag, param.name, type=param.type, default=param.default,
                                      show_default=param.default is not None, help=help_text)
            func = option(func)
    return func


_HELP = """Pick the next BUDGET points to label from EMBEDDINGS (alcli.embeddings, a plain HDF5 file with
a `features` dataset, or a .npy matrix; - reads stdin).

Writes an alcli.labeled artifact holding the old and the new indices, the new ones marked with the
next round number. kcenter with no --labeled starts from the point farthest from the mean; ties are
broken by the lowest index.
"""


@click.command("select", cls=Command, help=_HELP + _method_help())
@click.argument("embeddings", metavar="EMBEDDINGS", type=INPUT)
@click.option("--labeled", "labeled_path", type=INPUT, metavar="LABELED.h5",
              help="The labelled set so far (alcli.labeled). Omitted: start from an empty set.")
@click.option("--budget", "-b", type=int, required=True, help="How many new points to pick.")
@click.option("--method", "-m", default="kcenter", show_default=True, metavar="METHOD",
              help="Query strategy (listed below).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for randomised methods.")
@click.option("--exclude", "exclude_paths", type=INPUT, multiple=True, metavar="LABELED.h5",
              help="Rows that must never be picked nor counted (e.g. a test split). Repeatable.")
@click.option("--labels", "labels_path", type=INPUT, metavar="DATA.h5",
              help="A data set whose labels are all known (simulations; oracle-uncertainty).")
@click.option("--radius/--no-radius", default=None,
              help="Also compute the covering radius for methods that do not report it.")
@click.option("-o", "--output", default=STDIO, show_default=True, type=OUTPUT, metavar="OUT.h5",
              help="Where the new labelled set goes; - is stdout.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON line on stdout.")
@click.option("--scheduler", envvar="ALCLI_SCHEDULER", metavar="ADDRESS|local[:N]",
              help="Run kcenter on a Dask cluster: tcp://HOST:PORT, or local:N for N worker processes "
                   "on 127.0.0.1. [env ALCLI_SCHEDULER]")
@click.option("--distributed-mode", type=click.Choice(["exact", "two-round"]), default="exact", show_default=True,
              help="exact: the single-machine picks; each round trip to the workers takes every pick it can "
                   "prove. two-round: greedy per shard, then over their union (approximate, radius ≤ 4·optimal).")
@click.option("--memory-limit", metavar="SIZE",
              help="Keep the features on disk and hold at most SIZE (e.g. 200M, 2G) beyond the interpreter "
                   "(kcenter, random). Automatic when the file exceeds the available memory.")
@_strategy_options
def command(embeddings: str, labeled_path: str | None, budget: int, method: str, seed: int,
            exclude_paths: tuple[str, ...], labels_path: str | None, radius: bool | None, output: str,
            as_json: bool, scheduler: str | None, distributed_mode: str, memory_limit: str | None,
            **params: Any) -> None:
    from alcli.scale.outofcore import read_embeddings, resolve_memory_limit

    strat = get_strategy(method)
    if as_json and output == STDIO:
        raise AlcliError("--json prints to stdout, so the artifact needs -o FILE", "--json")
    check_output(output)
    params = resolve_params(strat, _given(strat, params), flags=True)
    limit = resolve_memory_limit(memory_limit, embeddings, strat.name, distributed=bool(scheduler))
    emb = read_embeddings(embeddings, load=tuple(n for n in OPTIONAL if n in strat.loads), memory_limit=limit)
    labeled = read_labeled(labeled_path) if labeled_path else LabeledSet.empty(emb.pool_size)
    exclude = _read_exclude(exclude_paths, emb.pool_size)
    labels = read_dataset(labels_path).labels if labels_path else None
    with select_runner(scheduler, distributed_mode, strat.name) as runner:
        rnd = select_round(emb, labeled, method, budget, seed=seed, exclude=exclude, labels=labels,
                           params=params, radius=radius, runner=runner)
    parents = {"embeddings": emb.sha256}
    if labeled_path:
        parents["labeled"] = labeled.sha256
    write_labeled(output, rnd.labeled, parents=parents)
    _report(rnd, as_json)


def _given(strat: Strategy, params: dict[str, Any]) -> dict[str, Any]:
    """The method's own options, plus any other method's option typed on the command line (an error)."""
    ctx = click.get_current_context()
    own = {p.name for p in strat.params}
    unset = (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)
    return {k: v for k, v in params.items() if k in own or ctx.get_parameter_source(k) not in unset}


def _read_exclude(paths: tuple[str, ...], pool_size: int) -> np.ndarray | None:
    if not paths:
        return None
    rows = []
    for path in paths:
        ex = read_labeled(path)
        if ex.pool_size != pool_size:
            raise AlcliError(f"is for a pool of {ex.pool_size} rows, the embeddings for {pool_size}", path)
        rows.append(ex.indices)
    return np.unique(np.concatenate(rows))


def _report(rnd: Round, as_json: bool) -> None:
    info = rnd.summary()
    if "distributed" in info:  # --scheduler: mode, workers, overhead / approximation bound
        console.say(f"dask: {' · '.join(f'{k} {console.fmt(v)}' for k, v in info['distributed'].items())}")
    if as_json:
        console.emit_json(console.clean_nan(info))
    before, after = info["radius_before"], info["radius_after"]
    radius = f" · covering radius {console.fmt(before)} → {console.fmt(after)}" if after is not None else ""
    console.say(
        f"[bold]{info['method']}[/]: picked {info['picked']} of {info['unlabeled_candidates']} unlabelled"
        f" (labelled {info['labeled_before']} → {info['labeled_after']}){radius} · {info['seconds']:.2f} s"
    )
    res = rnd.result
    if res.report.get("headline"):
        console.say(f"  {res.report['headline']}")
    shown = min(10, rnd.picks_rows.size)
    if shown and res.why is not None:
        rows = [(i + 1, int(rnd.picks_rows[i]), float(res.why[i])) for i in range(shown)]
        more = f" (first {shown} of {rnd.picks_rows.size})" if rnd.picks_rows.size > shown else ""
        console.show(console.table(f"picks{more}", ["#", "row", res.why_name or "score"], rows))
