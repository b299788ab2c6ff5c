"""Collecting everything wrong with a command's inputs, to report it all at once on one line."""

from __future__ import annotations

EXAMPLES = 10


class Problems:
    """Everything wrong with a set of inputs, by kind: a count and the first examples of each, told as
    one line, e.g. `3 unknown ids (a.png, b.png, c.png); 1 unknown class name (doggo)`."""

    def __init__(self) -> None:
        self._kinds: dict[tuple[str, ...], tuple[int, list[str], bool]] = {}
        self.sources: list[str] = []

    def add(self, kind: tuple[str, ...], example: str, source: str | None = None, count: int = 1) -> None:
        """`kind` = (singular, plural[, hint]); `count` problems of that kind, shown by `example`."""
        n, examples, cut = self._kinds.get(kind, (0, [], False))
        if example and example not in examples:
            cut = cut or len(examples) >= EXAMPLES
            examples += [example] if len(examples) < EXAMPLES else []
        self._kinds[kind] = (n + count, examples, cut or not example)
        if source is not None and source not in self.sources:
            self.sources.append(source)

    def __bool__(self) -> bool:
        return bool(self._kinds)

    def message(self) -> str:
        parts = []
        for kind, (n, examples, cut) in self._kinds.items():
            listed = f" ({', '.join(examples)}{', …' if cut else ''})" if examples else ""
            hint = f": {kind[2]}" if len(kind) > 2 else ""
            parts.append(f"{n} {kind[0] if n == 1 else kind[1]}{listed}{hint}")
        return "; ".join(parts)

    def source(self) -> str | None:
        if not self.sources:
            return None
        return ", ".join(self.sources[:3]) + (", …" if len(self.sources) > 3 else "")
