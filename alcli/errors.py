"""The one exception type a user sees: it becomes a one-line message on stderr and exit status 2."""

from __future__ import annotations

import os
import re


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


def why(exc: BaseException) -> str:
    """An OS error in words ('No space left on device'), else the exception's text, short."""
    number = getattr(exc, "errno", None)
    if isinstance(number, int) and number > 0:
        return os.strerror(number)
    found = re.search(r"errno = (\d+)", str(exc))  # HDF5 puts the errno in its message
    return os.strerror(int(found.group(1))) if found else short(exc)


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160]
