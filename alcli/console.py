"""Reporting: rich on stderr for people, one JSON line on stdout for scripts (stdout otherwise carries
artifacts). Progress bars appear only when stderr is a terminal and --quiet is off."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

T = TypeVar("T")

stderr = Console(stderr=True, highlight=False)
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def quiet() -> bool:
    return _state["quiet"]


def say(message: str) -> None:
    """A human line on stderr (suppressed by --quiet)."""
    if not _state["quiet"]:
        stderr.print(message)


def show(renderable: Any) -> None:
    if not _state["quiet"]:
        stderr.print(renderable)


def table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> Table:
    out = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        out.add_column(col)
    for row in rows:
        out.add_row(*(fmt(v) for v in row))
    return out


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.4g}"
    return str(value)


def emit_json(obj: dict[str, Any]) -> None:
    """One JSON line on stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=_default, allow_nan=False) + "\n")
    sys.stdout.flush()


def as_json(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as `emit_json` prints it, read back: plain JSON values, NaN as None."""
    return dict(json.loads(json.dumps(clean_nan(obj), sort_keys=True, default=_default, allow_nan=False)))


def _default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def clean_nan(obj: Any) -> Any:
    """NaN/inf -> None, recursively, so JSON output stays strict."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_nan(v) for v in obj]
    return obj


def progress(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """Iterate with a progress bar on stderr when it is a terminal and not --quiet."""
    if _state["quiet"] or not stderr.is_terminal:
        yield from items
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


class _Rate(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s")


@contextlib.contextmanager
def counter(total: int, description: str, unit: str, done: int = 0) -> Iterator[Callable[[int], None]]:
    """A progress bar with the rate (UNIT/s) and the time left on stderr (a terminal, not --quiet), starting
    at `done` (work already done, e.g. by an interrupted run); yields advance(n)."""
    if _state["quiet"] or not stderr.is_terminal:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(unit),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(description, total=total, completed=done)
        yield lambda n: bar.advance(task, n)
