"""For one class: each test image's probability and rank of its true class under two runs,
side by side (the clip-art study's "pelican" figure 5.10: base network vs optimised + SVM).

>>> rows, paths = rank_plot(store, "3f9c01ab", "77aa01cd", "pelican")   # doctest: +SKIP
>>> rows[0]                                                             # doctest: +SKIP
{'index': 12, 'a_prob': 0.03, 'a_rank': 9, 'b_prob': 0.81, 'b_rank': 1}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import config as cfgmod
from ..data import load_data
from ..errors import ConvbenchError, unknown_name
from ..store import Store
from .figures import new_figure, record, save_figure
from .plotting import run_label
from .runs import Predictions, get_run, predictions

COLUMNS = 6


def true_class_rank(pred: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Probability of the true class and its rank (1 = top) for every image.

    >>> p = Predictions(np.array([[0.2, 0.5, 0.3]]), np.array([2]), ["a", "b", "c"])
    >>> true_class_rank(p)
    (array([0.3]), array([2]))
    """
    true_p = pred.probs[np.arange(len(pred.y)), pred.y]
    return true_p, (pred.probs > true_p[:, None]).sum(1) + 1


def _test_images(run: dict) -> np.ndarray:
    """The run's test images (uint8 N×C×H×W), rebuilt from its data config."""
    cfg = run.get("config") or {}
    data = cfgmod.DataConfig.model_validate(cfg.get("data") or {})
    return load_data(data, int(run.get("seed") or 0)).test.x.numpy()


def rank_rows(a: Predictions, b: Predictions, class_name: str, limit: int = 12) -> list[dict]:
    """Rows for the first ``limit`` test images of ``class_name``: probability and rank in both."""
    if a.classes != b.classes or not np.array_equal(a.y, b.y):
        raise ConvbenchError("The two runs were not tested on the same images (different data "
                             "set, test_limit or class list); compare runs of one data set.")
    if class_name not in a.classes:
        raise unknown_name("class", class_name, a.classes)
    c = a.classes.index(class_name)
    (pa, ra), (pb, rb) = true_class_rank(a), true_class_rank(b)
    idx = np.flatnonzero(a.y == c)[:limit]
    return [{"index": int(i), "a_prob": float(pa[i]), "a_rank": int(ra[i]),
             "b_prob": float(pb[i]), "b_rank": int(rb[i])} for i in idx]


def rank_plot(store: Store, run_a: str, run_b: str, class_name: str, limit: int = 12,
              out_dir: str | Path | None = None) -> tuple[list[dict], dict[str, Path]]:
    """Thumbnails of the class's test images with both runs' probability and rank; the
    figure is recorded in run B (the "after")."""
    ra, rb = get_run(store, run_a), get_run(store, run_b)
    rows = rank_rows(predictions(store, ra), predictions(store, rb), class_name, limit)
    images = _test_images(ra)
    cols = min(COLUMNS, max(len(rows), 1))
    lines = max(1, -(-len(rows) // cols))
    fig = new_figure(1.9 * cols, 2.3 * lines + 0.6)
    axes = np.atleast_1d(fig.subplots(lines, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, row in zip(axes, rows, strict=False):
        img = images[row["index"]]
        ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0),
                  cmap="gray" if img.shape[0] == 1 else None)
        better = "#116329" if row["b_rank"] < row["a_rank"] or (
            row["b_rank"] == row["a_rank"] and row["b_prob"] >= row["a_prob"]) else "#cf222e"
        ax.set_title(f"A {row['a_prob']:.2f} (#{row['a_rank']})\nB {row['b_prob']:.2f} "
                     f"(#{row['b_rank']})", fontsize=8, color=better)
    fig.suptitle(f"class {class_name}: probability (rank) of the true class\n"
                 f"A = {run_label(ra)}   B = {run_label(rb)}", fontsize=9)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in class_name)
    paths = save_figure(fig, out_dir or store.run_dir(rb["id"]), f"rank-{safe}-vs-{ra['id']}")
    record(store, rb["id"], f"rank_{safe}_vs_{ra['id']}", paths)
    return rows, paths
