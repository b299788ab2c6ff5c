"""Click pieces every command shares: which parameters are input files and which are outputs.

Declare a file an input with `type=INPUT` and an output with `type=OUTPUT` (both plain strings to the
command), and build the command with `cls=Command`: before the command body runs, every output is
checked against every input, so `-o` naming one of the inputs (the same path, a link to it, a hard
link, the same inode) is refused with one line and exit 2 before anything is read or written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import click

from alcli import signals
from alcli.artifacts.output import same_file
from alcli.errors import AlcliError

STDIO = "-"


class PathParam(click.ParamType):
    """A file path (or `-`) with a role: "input" or "output". `keywords` are values that are not paths
    (e.g. `all` for `embed --indices`)."""

    def __init__(self, role: str, keywords: tuple[str, ...] = ()) -> None:
        self.role = role
        self.keywords = keywords
        self.name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value if value is None else str(value)


INPUT = PathParam("input")
OUTPUT = PathParam("output")


def input_path(keywords: tuple[str, ...] = ()) -> PathParam:
    return PathParam("input", keywords)


class Command(click.Command):
    """A click command that refuses outputs naming inputs before its body runs."""

    def invoke(self, ctx: click.Context) -> Any:
        inputs: list[tuple[str, str]] = []
        outputs: list[tuple[str, str]] = []
        for param in self.params:
            if not isinstance(param.type, PathParam):
                continue
            for value in _values(ctx.params.get(param.name or "")):
                if value == STDIO or value in param.type.keywords:
                    continue
                (inputs if param.type.role == "input" else outputs).append((_flag(param), value))
        check_distinct(outputs, inputs)
        signals.announce("running")
        return super().invoke(ctx)


def _values(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, (tuple, list)):
        for item in value:
            yield from _values(item)
    else:
        yield str(value)


def _flag(param: click.Parameter) -> str:
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    return getattr(param, "metavar", None) or (param.name or "").upper()


def check_distinct(outputs: Iterable[tuple[str, str]], inputs: Iterable[tuple[str, str]]) -> None:
    """Raise AlcliError when an output names an input, or two outputs name one file."""
    inputs = list(inputs)
    seen: list[tuple[str, str]] = []
    for out_flag, out in outputs:
        for in_flag, src in inputs:
            if same_file(out, src):
                raise AlcliError(f"output ({out_flag}) names the input {src} ({in_flag}): inputs are never "
                                 "overwritten, choose another output path", out)
        for other_flag, other in seen:
            if same_file(out, other):
                raise AlcliError(f"{out_flag} and {other_flag} name the same file", out)
        seen.append((out_flag, out))
