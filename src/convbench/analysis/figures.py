"""Saving analysis figures as PNG and SVG into a run's artifacts folder, and recording them.

>>> paths = save_figure(fig, store.run_dir(run_id), "tsne-test")   # doctest: +SKIP
>>> record(store, run_id, "tsne_test", paths)                      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

from matplotlib.figure import Figure  # noqa: E402

from ..store import Store  # noqa: E402

DPI = 120


def new_figure(width: float, height: float, **kwargs) -> Figure:
    """A matplotlib figure not tied to pyplot (nothing global to close)."""
    return Figure(figsize=(width, height), layout="constrained", **kwargs)


def save_figure(fig: Figure, folder: str | Path, stem: str) -> dict[str, Path]:
    """Write ``stem.png`` and ``stem.svg`` into ``folder``; return both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"png": folder / f"{stem}.png", "svg": folder / f"{stem}.svg"}
    fig.savefig(paths["png"], dpi=DPI)
    fig.savefig(paths["svg"], metadata={"Date": None})
    return paths


def record(store: Store | None, run_id: str | None, key: str, paths: dict[str, Path]) -> None:
    """Add the figure files to the run's ``artifacts`` (as ``<key>_png``, ``<key>_svg``)."""
    if store is not None and run_id:
        store.update(run_id, artifacts={f"{key}_{fmt}": str(p) for fmt, p in paths.items()})
