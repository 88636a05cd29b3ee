"""Per-layer weight change: the sum of squared differences of each layer's parameters
between two checkpoints (the clip-art study's figure of which layers fine-tuning moved).

The reference is the run's own start (rebuilt: the pretrained weights after truncation and
re-initialisation, same seed), another run's best weights, or a weights file.

>>> rows, paths = weights_plot(store, "3f9c01ab")         # doctest: +SKIP
>>> rows[0]                                              # doctest: +SKIP
{'layer': 'conv_stem', 'ssd': 0.0, 'params': 288}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import StoreError, WeightsError
from ..models.pretrained import read_weights
from ..store import Store
from .figures import new_figure, record, save_figure
from .plotting import run_label
from .runs import best_weights_path, get_run, open_run


def weight_change(order: list[str], a: dict[str, torch.Tensor],
                  b: dict[str, torch.Tensor]) -> list[dict]:
    """Per layer (parameter name minus its last part), in ``order``: the sum of squared
    differences and the number of parameters compared. Layers missing from either side, or
    of another shape, are left out.

    >>> a = {"fc.weight": torch.ones(2, 2), "fc.bias": torch.zeros(2)}
    >>> b = {"fc.weight": torch.zeros(2, 2), "fc.bias": torch.ones(2)}
    >>> weight_change(["fc.weight", "fc.bias"], a, b)
    [{'layer': 'fc', 'ssd': 6.0, 'params': 6}]
    """
    rows: dict[str, dict] = {}
    for name in order:
        if name not in a or name not in b or a[name].shape != b[name].shape:
            continue
        layer = name.rpartition(".")[0] or name
        diff = (a[name].double() - b[name].double()).pow(2).sum().item()
        row = rows.setdefault(layer, {"layer": layer, "ssd": 0.0, "params": 0})
        row["ssd"] += diff
        row["params"] += a[name].numel()
    return list(rows.values())


def _reference(store: Store, other: str | None, start: dict) -> tuple[dict, str, str]:
    if other is None:
        return start, "its start", "start"
    path = Path(other)
    if path.suffix in (".safetensors", ".pth", ".pt", ".bin") or path.is_file():
        return read_weights(path), path.name, path.stem
    try:
        run = get_run(store, other)
    except StoreError:
        raise WeightsError(f"{other!r} is neither a run id nor a weights file.") from None
    return read_weights(best_weights_path(store, run)), f"run {run['id']}", run["id"]


def weights_plot(store: Store, run_id: str, other: str | None = None,
                 out_dir: str | Path | None = None) -> tuple[list[dict], dict[str, Path]]:
    """Bars of per-layer weight change of a run's best weights against ``other`` (default:
    the run's start); saved and recorded in the run."""
    loaded = open_run(store, run_id, weights="start")
    run = loaded.run
    order = [n for n, _ in loaded.model.named_parameters()]
    start = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    best = read_weights(best_weights_path(store, run))
    ref, ref_label, ref_key = _reference(store, other, start)
    rows = weight_change(order, best, ref)
    if not rows:
        raise WeightsError(f"No layer of run {run['id']} matches {ref_label} by name and shape.")
    fig = new_figure(max(6.0, 0.16 * len(rows) + 2), 4.5)
    ax = fig.add_subplot()
    values = np.array([r["ssd"] for r in rows])
    ax.bar(np.arange(len(rows)), values, color="#0b6bcb")
    ax.set_xticks(np.arange(len(rows)), [r["layer"] for r in rows], rotation=90,
                  fontsize=6 if len(rows) > 30 else 8)
    if values.max() > 0 and values[values > 0].min() < values.max() / 1e3:
        ax.set_yscale("symlog", linthresh=max(values[values > 0].min(), 1e-12))
    ax.set_ylabel("sum of squared differences")
    ax.set_title(f"Weight change per layer: {run_label(run)} vs {ref_label}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    paths = save_figure(fig, out_dir or store.run_dir(run["id"]), f"weights-vs-{ref_key}")
    record(store, run["id"], f"weights_vs_{ref_key}", paths)
    return rows, paths
