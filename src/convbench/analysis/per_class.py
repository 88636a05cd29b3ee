"""Per-class top-1, top-5 and cross-entropy of any run (the clip-art study's figure 5.4).

>>> values, paths = per_class_plot(store, "3f9c01ab")   # doctest: +SKIP
>>> values[0]["top1"]                                   # doctest: +SKIP
0.93
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..store import Store
from .figures import new_figure, record, save_figure
from .plotting import run_label
from .runs import Predictions, get_run, predictions


def per_class_values(pred: Predictions) -> list[dict]:
    """One row per class: images, top-1, top-5 (None below 5 classes), mean cross-entropy.

    >>> p = Predictions(np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]), np.array([0, 0]),
    ...                 ["a", "b", "c"])
    >>> rows = per_class_values(p)
    >>> rows[0]["top1"], rows[1]["images"], rows[1]["top1"]
    (0.5, 0, None)
    """
    probs, y = pred.probs, pred.y
    n_classes = probs.shape[1]
    # Rank of the true class: how many classes got a strictly higher probability.
    true_p = probs[np.arange(len(y)), y]
    rank = (probs > true_p[:, None]).sum(1)
    ce = -np.log(np.clip(true_p, 1e-12, 1.0))
    rows = []
    for c, name in enumerate(pred.classes):
        mask = y == c
        n = int(mask.sum())
        rows.append({"class": name, "images": n,
                     "top1": float((rank[mask] == 0).mean()) if n else None,
                     "top5": float((rank[mask] < 5).mean()) if n and n_classes >= 5 else None,
                     "cross_entropy": float(ce[mask].mean()) if n else None})
    return rows


def per_class_plot(store: Store, run_id: str,
                   out_dir: str | Path | None = None) -> tuple[list[dict], dict[str, Path]]:
    """Bars of per-class top-1, top-5 and cross-entropy; saved and recorded in the run."""
    run = get_run(store, run_id)
    rows = per_class_values(predictions(store, run))
    names = [r["class"] for r in rows]
    panels = [("top1", "top-1 accuracy"), ("top5", "top-5 accuracy"),
              ("cross_entropy", "cross-entropy")]
    fig = new_figure(10.0, 1.6 + 0.28 * len(rows))
    axes = fig.subplots(1, 3, sharey=True)
    ypos = np.arange(len(rows))
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = [r[key] if r[key] is not None else np.nan for r in rows]
        ax.barh(ypos, values, color="#0b6bcb" if key != "cross_entropy" else "#cf222e")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if key != "cross_entropy":
            ax.set_xlim(0, 1)
    axes[0].set_yticks(ypos, names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f"Per class — {run_label(run)}", fontsize=11)
    paths = save_figure(fig, out_dir or store.run_dir(run["id"]), "per-class")
    record(store, run["id"], "per_class", paths)
    return rows, paths
