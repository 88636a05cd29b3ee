"""Shared plot details: class colours and a short label for a run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from matplotlib import colormaps  # noqa: E402


def class_colours(n: int) -> list:
    """``n`` distinguishable colours (tab10, tab20, then a sampled continuous map).

    >>> len(class_colours(23))
    23
    """
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    cmap = colormaps["gist_ncar"]
    return [cmap(0.05 + 0.9 * i / max(n - 1, 1)) for i in range(n)]


def run_label(run: dict) -> str:
    """``<id> <name or model>`` for titles and legends.

    >>> run_label({"id": "ab12cd34", "name": None, "config": {"model": {"name": "vgg16"}}})
    'ab12cd34 vgg16'
    """
    model = ((run.get("config") or {}).get("model") or {}).get("name", "")
    return f"{run['id']} {run.get('name') or model}".strip()
