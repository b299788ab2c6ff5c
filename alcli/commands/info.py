"""`alcli info`: what an artifact is: kind, version, datasets and attrs."""

from __future__ import annotations

from typing import Any

import click
import h5py

from alcli import console
from alcli.artifacts.io import STDIO, attrs_dict, format_of, name_text, open_input
from alcli.options import INPUT, Command


def describe(path: str) -> dict[str, Any]:
    """Kind, version, every dataset's shape and dtype, and the root attrs of an HDF5 file."""
    with open_input(path) as src:
        datasets: dict[str, Any] = {}

        def visit(name: str | bytes, node: Any) -> None:
            if isinstance(node, h5py.Dataset):
                datasets[name_text(name)] = {"shape": list(node.shape), "dtype": str(node.dtype)}

        src.file.visititems(visit)
        attrs = attrs_dict(src)
        fmt = format_of(src)
        return {
            "file": src.name,
            "kind": fmt.removeprefix("alcli.") if fmt else "plain HDF5 (no format attr)",
            "version": attrs.get("version"),
            "sha256": src.sha256,
            "datasets": datasets,
            "attrs": {k: v for k, v in attrs.items() if k not in ("format", "version")},
        }


@click.command("info", cls=Command)
@click.argument("path", metavar="FILE", default=STDIO, type=INPUT)
@click.option("--json", "as_json", is_flag=True, help="One JSON line on stdout instead of tables.")
def command(path: str, as_json: bool) -> None:
    """Show an artifact's kind, version, datasets (shapes, dtypes) and attrs. FILE may be - (stdin)."""
    info = describe(path)
    if as_json:
        console.emit_json(console.clean_nan(info))
        return
    console.stderr.print(f"[bold]{info['file']}[/]: {info['kind']} (version {console.fmt(info['version'])})")
    rows = [(name, "×".join(map(str, d["shape"])) or "scalar", d["dtype"]) for name, d in info["datasets"].items()]
    console.stderr.print(console.table("datasets", ["name", "shape", "dtype"], rows))
    attrs = [(k, _short(v)) for k, v in sorted(info["attrs"].items())]
    console.stderr.print(console.table("attrs", ["name", "value"], attrs))


def _short(value: Any) -> str:
    text = console.fmt(value) if not isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 100 else text[:97] + "..."
