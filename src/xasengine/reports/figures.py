"""Matplotlib without a display, and PNGs that never exist half-written."""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path


def pyplot():
    """pyplot on the Agg backend: report rules run on headless cluster nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path, dpi: int = 110) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
