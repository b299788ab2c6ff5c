"""The one exception type a user sees: it becomes a one-line message on stderr and exit status 2."""

from __future__ import annotations


class AlcliError(Exception):
    """Bad input or an impossible request. `source` names the file (or option) at fault."""

    exit_code = 2

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        text = " ".join(self.message.split())  # always one line
        return f"{self.source}: {text}" if self.source else text
