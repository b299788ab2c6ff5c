"""Drawing: matplotlib on the Agg backend (no display needed), the output formats alcli writes, and the
map of a pool (the paper's Figure 5). Learning curves are drawn in `alcli.report.curves` with the same helpers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from alcli.errors import AlcliError

FORMATS = (".png", ".pdf", ".svg")
# Okabe–Ito colours (readable with colour-blindness); the paper's Figure 5 used blue / green / red
REST, EARLIER, PICKS = "#bdbdbd", "#0072b2", "#d55e00"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend; a one-line error when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise AlcliError("drawing needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_format(path: str, flag: str = "--output") -> str:
    """The format of an image path from its extension (png, pdf or svg), else an AlcliError."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise AlcliError(f"must end in {', '.join(FORMATS)} (the image format), got {path!r}", flag)
    return ext[1:]


def save(fig: Any, path: str, fmt: str | None = None) -> None:
    """Write a figure and free it."""
    plt = pyplot()
    fig.savefig(path, format=fmt)
    plt.close(fig)


def draw_map(coords: np.ndarray, panels: Sequence[Any], path: str, fmt: str, suptitle: str = "",
             subsampled: bool = False) -> None:
    """One panel per labelled artifact over the same 2-D coordinates: the rest (grey, small), earlier
    labelled points (blue) and the last round's picks (vermillion, on top), with a legend."""
    plt = pyplot()
    n = len(panels)
    cols = min(n, 3)
    rows = -(-n // cols)
    size = 5.2 if n > 1 else 6.4
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.4), dpi=110, squeeze=False)
    m = coords.shape[0]
    dot = float(np.clip(40000 / max(m, 1), 0.6, 12))  # marker area: smaller for denser maps
    lo, hi = coords.min(0), coords.max(0)
    pad = 0.03 * np.maximum(hi - lo, 1e-9)
    for ax, panel in zip(axes.flat, panels, strict=False):
        rest = np.ones(m, bool)
        rest[panel.earlier] = False
        rest[panel.picks] = False
        ax.scatter(*coords[rest].T, s=dot, c=REST, linewidths=0, alpha=0.55, rasterized=True,
                   label=f"unlabelled ({int(rest.sum()):,}{' shown' if subsampled else ''})")
        ax.scatter(*coords[panel.earlier].T, s=dot * 2.2, c=EARLIER, linewidths=0, alpha=0.9, rasterized=True,
                   label=f"labelled earlier ({panel.earlier.size:,})")
        ax.scatter(*coords[panel.picks].T, s=dot * 2.2, c=PICKS, linewidths=0, alpha=0.9, rasterized=True,
                   label=f"picked this round ({panel.picks.size:,})")
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3, fontsize=8, frameon=False,
                  markerscale=max(1.0, 12 / dot) ** 0.5, handletextpad=0.2, columnspacing=1.0)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    save(fig, path, fmt)
