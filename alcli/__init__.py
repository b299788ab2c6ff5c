"""alcli: batch active learning from the command line (core-set / k-Center selection over HDF5 artifacts).

The Python API (alcli.api), loaded on first use so that `import alcli` stays light:

    >>> import alcli
    >>> sel = alcli.select(features, labeled=labelled_rows, budget=100)   # method="kcenter"
    >>> sel.picks, sel.scores, sel.radius_after
    >>> alcli.write("l1.h5", sel); lab = alcli.read("l1.h5")
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
__version__ = "0.1.0"
__all__ = ["AlcliError", "Selection", "covering_radius", "read", "select", "write"]

if TYPE_CHECKING:
    from typing import Any

    from alcli.api import Selection, covering_radius, read, select, write
    from alcli.errors import AlcliError


def __getattr__(name: str) -> Any:
    if name == "AlcliError":
        from alcli.errors import AlcliError

        return AlcliError
    if name in __all__:
        from alcli import api

        return getattr(api, name)
    raise AttributeError(f"module 'alcli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
