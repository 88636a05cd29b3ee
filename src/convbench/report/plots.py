"""Report plots: learning curves, accuracy against cost, per-class accuracy, confusion.

Figures are built on matplotlib's object API with an Agg canvas (no pyplot, no global
state), so reports can be written from worker threads, e.g. by the dashboard server. Each
variant keeps one colour in every plot.

>>> fig = per_class_figure(["a", "b"], ["cat", "dog"], {"a": "#0072B2", "b": "#E69F00"},
...                        [[0.9, 0.8], [0.5, 0.6]])
>>> len(fig.axes)
1
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, NullFormatter, PercentFormatter

from . import fmt
from .pareto import pareto_front

# Okabe–Ito first (distinguishable with colour-blindness), then tab20 for long comparisons.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000"] + [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab20"].colors]

STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#8c959f",
    "axes.labelcolor": "#1f2328",
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.8,
    "xtick.color": "#59636e",
    "ytick.color": "#59636e",
    "legend.frameon": False,
    "legend.fontsize": 9,
    "lines.linewidth": 1.8,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}

# (metric, name, unit) of the cost axes; "time" picks s, min or h from the data.
COST_AXES: list[tuple[str, str, str]] = [
    ("train_time_s", "Train time", "time"),
    ("flops", "FLOPs per image", ""),
    ("params_total", "Parameters", ""),
    ("energy_j", "Energy", "J"),
]
TIME_UNITS = [(3600.0, "h"), (60.0, "min"), (1.0, "s")]


def colours(labels: list[str]) -> dict[str, str]:
    """A fixed colour per variant label, in table order.

    >>> colours(["a", "b"])
    {'a': '#0072B2', 'b': '#E69F00'}
    """
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


@contextmanager
def styled() -> Iterator[None]:
    """The report style (:data:`STYLE`) for the figures made inside the block."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float, height: float, **kwargs: Any) -> Figure:
    """A figure of ``width`` × ``height`` inches with a constrained layout.

    Object API with an Agg canvas: no pyplot state, safe from worker threads.

    >>> new_figure(4, 3).get_size_inches().tolist()
    [4.0, 3.0]
    """
    fig = Figure(figsize=(width, height), layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def lines_figure(series: list[tuple[str, list[tuple[float, float]]]], colour: dict[str, str],
                 *, xlabel: str, ylabel: str, title: str, log: bool = False) -> Figure | None:
    """One line per variant (``(label, [(x, y), …])``); None when no variant has points.

    >>> lines_figure([("a", [])], {"a": "#000"}, xlabel="x", ylabel="y", title="t") is None
    True
    """
    if not any(points for _, points in series):
        return None
    with styled():
        fig = new_figure(7.5, 3.6)
        ax = fig.add_subplot()
        for label, points in series:
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=label, color=colour[label])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.legend()
    return fig


def front_figure(points: list[tuple[str, float | None, float | None]], colour: dict[str, str],
                 *, xlabel: str, ylabel: str, title: str) -> Figure | None:
    """One point per variant (``(label, cost, quality)``), the Pareto front dashed; None when
    no variant has both numbers."""
    labels = [label for label, _, _ in points]
    pts = [(fmt.number(x), fmt.number(y)) for _, x, y in points]
    if not any(x is not None and y is not None for x, y in pts):
        return None
    front = pareto_front(pts)
    with styled():
        fig = new_figure(6.5, 3.8)
        ax = fig.add_subplot()
        for (x, y), label in zip(pts, labels, strict=True):
            if x is not None and y is not None:
                ax.scatter([x], [y], color=colour[label], label=label, s=40, zorder=3)
        if len(front) > 1:
            ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], color="#8c959f",
                    linestyle="--", linewidth=1, zorder=2, label="Pareto front")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
    return fig


def _array(values: list[Any]) -> list[float]:
    # NaN leaves a gap in a line instead of failing on None.
    return [v if (v := fmt.number(x)) is not None else math.nan for x in values]


def learning_curves_figure(
    curves: dict[str, dict[str, dict[str, list[Any]]]], colour: dict[str, str]
) -> Figure:
    """Train/validation loss and accuracy per epoch, one line per variant (mean over seeds).

    ``curves`` maps a label to :func:`convbench.report.summary.mean_curves` output; a band
    shows ± one std where several seeds ran.
    """
    panels = [
        ("train_loss", "Training loss", "Loss (cross-entropy)"),
        ("val_loss", "Validation loss", "Loss (cross-entropy)"),
        ("train_accuracy", "Training accuracy", "Accuracy (%)"),
        ("val_accuracy", "Validation accuracy", "Accuracy (%)"),
    ]
    with styled():
        fig = new_figure(10, 6.6)
        axes = fig.subplots(2, 2, sharex=True)
        for ax, (key, title, ylabel) in zip(axes.flat, panels, strict=True):
            scale = 100.0 if "accuracy" in key else 1.0
            for label, curve in curves.items():
                series = curve.get(key) or {}
                x = _array(series.get("epoch", []))
                mean = [v * scale for v in _array(series.get("mean", []))]
                if not x or all(math.isnan(v) for v in mean):
                    continue
                ax.plot(x, mean, color=colour[label], label=label,
                        marker="o" if len(x) <= 12 else None, markersize=3.5)
                std = [v * scale for v in _array(series.get("std", []))]
                if any(not math.isnan(s) for s in std):
                    lo = [m - s for m, s in zip(mean, std, strict=True)]
                    hi = [m + s for m, s in zip(mean, std, strict=True)]
                    ax.fill_between(x, lo, hi, color=colour[label], alpha=0.15, linewidth=0)
            ax.set_title(title)
            ax.set_ylabel(ylabel)
            if "loss" in key:
                ax.set_ylim(bottom=0)
            ax.xaxis.get_major_locator().set_params(integer=True)
        for ax in axes[1]:
            ax.set_xlabel("Epoch")
        _shared_legend(fig, axes.flat)
    return fig


def legend_columns(labels: list[str], width_in: float) -> int:
    """How many legend columns of these labels fit across a figure ``width_in`` wide.

    >>> legend_columns(["a", "b", "c"], 10), legend_columns(["B2FL32 (optim=sgd, lr=0.01)"] * 6, 5)
    (3, 1)
    """
    # About 5.5 pt per character at the legend's 9 pt, plus the marker and the gap.
    entry_pt = 5.5 * max((len(s) for s in labels), default=1) + 40
    return max(1, min(len(labels), 4, int(width_in * 72 // entry_pt)))


def _shared_legend(fig: Figure, axes: Any) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        ncols = legend_columns(list(handles), fig.get_figwidth())
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=ncols)


def _time_unit(largest: float) -> tuple[float, str]:
    """Seconds per unit and the unit (s, min or h) that reads best for durations up to largest.

    >>> _time_unit(90.0), _time_unit(600.0)
    ((1.0, 's'), (60.0, 'min'))
    """
    return next(((f, u) for f, u in TIME_UNITS if largest >= 2 * f), (1.0, "s"))


def _format_axis(ax: Any, label: str, unit: str) -> None:
    """Ticks with k/M/G prefixes and the unit (``5 kJ``, ``25M``)."""
    ax.xaxis.set_major_formatter(EngFormatter(unit=unit, sep=" " if unit else ""))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if ax.get_xscale() == "linear":
        ax.locator_params(axis="x", nbins=5)  # "1.625M" labels need room
    ax.set_xlabel(label + ("  ·  log scale" if ax.get_xscale() == "log" else ""))


def cost_figure(rows: list[dict], colour: dict[str, str]) -> Figure | None:
    """Test accuracy against each cost (time, FLOPs, parameters, energy) with the Pareto front.

    The front (dashed line, ringed points) joins the variants no other variant beats on both
    cost and accuracy. Returns None when no variant has both an accuracy and a cost.
    """
    usable = []
    for key, name, unit in COST_AXES:
        pts = [(_mean(r, key), _mean(r, "test_accuracy")) for r in rows]
        xs = [x for x, y in pts if x is not None and y is not None]
        if not xs:
            continue
        label, tick_unit = name, unit
        if unit == "time":
            # Plot in the unit people read (min), not in seconds with odd tick values.
            factor, symbol = _time_unit(max(xs))
            pts = [(None if x is None else x / factor, y) for x, y in pts]
            label, tick_unit = f"{name} ({symbol})", ""
        usable.append((name, label, tick_unit, pts))
    if not usable:
        return None
    cols = 2 if len(usable) > 1 else 1
    nrows = math.ceil(len(usable) / cols)
    with styled():
        fig = new_figure(5 * cols, 3.6 * nrows + 0.5)
        axes = fig.subplots(nrows, cols, squeeze=False)
        for ax, (name, label, tick_unit, pts) in zip(axes.flat, usable, strict=False):
            _cost_panel(ax, rows, pts, colour)
            ax.set_title(f"Accuracy vs {name.removesuffix(' per image')}")
            _format_axis(ax, label, tick_unit)
        for ax in list(axes.flat)[len(usable):]:
            ax.set_visible(False)
        _shared_legend(fig, axes.flat)
    return fig


def _mean(row: dict, key: str) -> float | None:
    return fmt.number(((row.get("metrics") or {}).get(key) or {}).get("mean"))


def _std(row: dict, key: str) -> float | None:
    return fmt.number(((row.get("metrics") or {}).get(key) or {}).get("std"))


def _cost_panel(ax: Any, rows: list[dict], pts: list[tuple[float | None, float | None]],
                colour: dict[str, str]) -> None:
    xs = [x for x, y in pts if x is not None and y is not None]
    # Costs of compared models often span orders of magnitude (93k vs 25M parameters).
    if min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    middle = (min(xs) + max(xs)) / 2
    for row, (x, y) in zip(rows, pts, strict=True):
        if x is None or y is None:
            continue
        err = _std(row, "test_accuracy")
        ax.errorbar(x, y * 100, yerr=None if err is None else err * 100, fmt="o",
                    color=colour[row["label"]], label=row["label"], markersize=7,
                    capsize=3, elinewidth=1, zorder=3)
        if len(rows) <= 8:
            # Labels point inwards and stay out of the layout, so they never shrink the axes.
            right = len(xs) > 1 and x > middle and ax.get_xscale() != "log"
            note = ax.annotate(row["label"], (x, y * 100), textcoords="offset points",
                               xytext=(-8 if right else 8, 6), ha="right" if right else "left",
                               fontsize=8, color="#424a53", annotation_clip=False)
            note.set_in_layout(False)
    front = pareto_front([(x, y) for x, y in pts])
    if front:
        fx = [pts[i][0] for i in front]
        fy = [pts[i][1] * 100 for i in front]
        ax.plot(fx, fy, linestyle="--", color="#59636e", linewidth=1, drawstyle="steps-post",
                zorder=2, label="Pareto front")
        ax.scatter(fx, fy, s=150, facecolors="none", edgecolors="#1f2328", linewidths=1.2,
                   zorder=4)
    ax.set_ylabel("Test accuracy (%)")
    ax.margins(x=0.15, y=0.15)


def per_class_figure(
    labels: list[str], classes: list[str], colour: dict[str, str],
    per_class: list[list[float | None]],
) -> Figure:
    """Grouped bars: accuracy per class, one bar per variant."""
    n_classes = len(classes)
    width_in = min(max(10.0, 0.18 * n_classes * max(len(labels), 2) + 1.5), 18.0)
    with styled():
        fig = new_figure(width_in, 3.8)
        ax = fig.subplots()
        bar = 0.8 / max(len(labels), 1)
        for j, (label, values) in enumerate(zip(labels, per_class, strict=True)):
            xs = [i + (j - (len(labels) - 1) / 2) * bar for i in range(n_classes)]
            ys = [v * 100 for v in _array(list(values)[:n_classes])]
            ys += [math.nan] * (n_classes - len(ys))
            ax.bar(xs, ys, width=bar, color=colour[label], label=label)
        ax.set_xticks(range(n_classes))
        long_names = any(len(c) > 4 for c in classes)
        ax.set_xticklabels(classes, rotation=40 if long_names and n_classes > 5 else 0,
                           ha="right" if long_names and n_classes > 5 else "center")
        ax.set_ylim(0, 100)
        ax.set_ylabel("Test accuracy (%)")
        ax.set_xlabel("Class")
        ax.grid(axis="x", visible=False)
        ax.set_xlim(-0.6, n_classes - 0.4)
        if len(labels) > 1:
            fig.legend(loc="outside lower center", ncols=legend_columns(labels, width_in))
        else:
            ax.set_title(labels[0])
    return fig


def confusion_figure(label: str, matrix: list[list[float]], classes: list[str]) -> Figure:
    """Confusion matrix of one variant: colour = share of the true class, text = count."""
    n = len(matrix)
    side = min(max(3.6, 0.3 * n + 1.8), 9.0)
    with styled():
        fig = new_figure(side + 0.9, side)
        ax = fig.subplots()
        shares = []
        for row in matrix:
            total = sum(row)
            shares.append([v / total if total else 0.0 for v in row])
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ticks = classes if len(classes) == n else [str(i) for i in range(n)]
        if n <= 40:
            ax.set_xticks(range(n), ticks, rotation=90 if max(map(len, ticks)) > 2 else 0)
            ax.set_yticks(range(n), ticks)
        if n <= 15:
            for i in range(n):
                for j in range(len(matrix[i])):
                    count = matrix[i][j]
                    if count:
                        ax.text(j, i, f"{count:g}", ha="center", va="center", fontsize=8,
                                color="white" if shares[i][j] > 0.55 else "#1f2328")
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        ax.set_title(label)
        bar = fig.colorbar(image, ax=ax, shrink=0.8, format=PercentFormatter(xmax=1, decimals=0))
        bar.set_label("Share of true class")
        bar.outline.set_visible(False)
    return fig
