"""Figures of LR range tests and searches: metric against LR with the bounds marked, range
curves of many configurations, early against final accuracy.

Built on matplotlib's object API with an Agg canvas (no pyplot state) and the report's style,
so the same figure goes into a PNG file or inline into an HTML report.

>>> fig = lr_curve_figure([{"label": "s0", "lr": [1e-4, 1e-3, 1e-2], "loss": [2.3, 2.0, 2.5],
...                         "accuracy": [0.1, 0.4, 0.3]}], lower=1e-4, upper=1e-3)
>>> len(fig.axes)
2
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from ..report.plots import PALETTE, new_figure, styled

KEPT, DISCARDED, BAND = "#0072B2", "#a0a7b0", "#009E73"


def _clean(values: list[Any]) -> list[float]:
    return [v if isinstance(v, int | float) and math.isfinite(v) else math.nan for v in values]


def _log_axis(curves: list[dict], log_x: bool | None) -> bool:
    if log_x is not None:
        return log_x
    lrs = [v for c in curves for v in c.get("lr", []) if v and v > 0]
    # Like the sweep's `auto` mode: two decades or less read best on a linear axis.
    return bool(lrs) and max(lrs) / min(lrs) > 100 * (1 + 1e-9)


def lr_curve_figure(curves: list[dict], *, lower: float | None = None,
                    upper: float | None = None, log_x: bool | None = None,
                    title: str = "") -> Figure:
    """Smoothed loss and accuracy against the LR, one line per curve, bounds shaded.

    ``curves``: dicts with ``label``, ``lr``, ``loss``, ``accuracy`` (and optional ``val``: a
    list of ``(lr, val_accuracy)`` points, drawn as markers). ``log_x`` None: log axis when
    the range spans more than two decades.
    """
    log = _log_axis(curves, log_x)
    with styled():
        fig = new_figure(10, 4.2)
        ax_loss, ax_acc = fig.subplots(1, 2, sharex=True)
        for i, c in enumerate(curves):
            colour = c.get("colour") or PALETTE[i % len(PALETTE)]
            lr = _clean(c["lr"])
            ax_loss.plot(lr, _clean(c["loss"]), color=colour, label=c.get("label"))
            ax_acc.plot(lr, [v * 100 for v in _clean(c["accuracy"])], color=colour,
                        label=c.get("label"))
            val = [(x, y) for x, y in c.get("val") or [] if x is not None and y is not None]
            if val:
                ax_acc.plot([x for x, _ in val], [y * 100 for _, y in val], "o", color=colour,
                            markersize=4, markerfacecolor="white")
        for ax in (ax_loss, ax_acc):
            if log:
                ax.set_xscale("log")
            if lower is not None and upper is not None:
                ax.axvspan(lower, upper, color=BAND, alpha=0.12, linewidth=0)
            for x, name in ((lower, "lower"), (upper, "upper")):
                if x is not None:
                    ax.axvline(x, color=BAND, linestyle="--", linewidth=1.2)
                    ax.annotate(f"{name} {x:.3g}", (x, 1), xycoords=("data", "axes fraction"),
                                rotation=90, va="top", ha="right", fontsize=8, color=BAND)
            ax.set_xlabel("Learning rate" + (" (log)" if log else ""))
        ax_loss.set_title("Training loss (smoothed)")
        ax_loss.set_ylabel("Loss (cross-entropy)")
        ax_acc.set_title("Accuracy (smoothed; circles: validation)")
        ax_acc.set_ylabel("Accuracy (%)")
        ax_acc.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        _limit_loss_axis(ax_loss, curves)
        if 1 < len(curves) <= 12:
            ax_acc.legend(loc="best")
        if title:
            fig.suptitle(title)
    return fig


def _limit_loss_axis(ax: Any, curves: list[dict]) -> None:
    # A diverging tail (or one diverging configuration) would squash the interesting part:
    # cap the axis at 1.5 × the typical starting loss.
    starts = []
    for c in curves:
        finite = [v for v in _clean(c["loss"]) if not math.isnan(v)]
        if finite:
            starts.append(finite[0])
    lows = [v for c in curves for v in _clean(c["loss"]) if not math.isnan(v)]
    if starts and lows:
        top = 1.5 * sorted(starts)[len(starts) // 2]
        ax.set_ylim(max(0.0, min(lows) - 0.05 * top), top)


def range_curves_figure(curves: list[dict], title: str = "") -> Figure:
    """Range-test curves of many configurations: kept ones in colour and named, discarded
    ones grey (``status`` of each curve dict: ``kept`` or anything else)."""
    kept = [c for c in curves if c.get("status") == "kept"]
    colours = {c["label"]: PALETTE[i % len(PALETTE)] for i, c in enumerate(kept)}
    painted = [{**c, "colour": colours.get(c["label"], DISCARDED),
               "label": c["label"] if c["label"] in colours else None} for c in curves]
    # Grey first, so the kept curves are drawn on top.
    painted.sort(key=lambda c: c["label"] is not None)
    fig = lr_curve_figure(painted, title=title)
    if kept:  # below the panels: long configuration labels would cover the curves
        handles, labels = fig.axes[1].get_legend_handles_labels()
        if fig.axes[1].get_legend():
            fig.axes[1].get_legend().remove()
        fig.legend(handles, labels, loc="outside lower center", ncols=2 if len(kept) > 3 else 1,
                   fontsize=8)
    return fig


def early_final_figure(points: list[dict], stats: dict[str, Any]) -> Figure:
    """Early (screening) against final validation accuracy, one point per configuration.

    ``points``: dicts with ``early``, ``final``, ``label``, ``kept`` (bool), ``winner``
    (bool); ``stats``: ``spearman``, ``kendall`` for the title.
    """
    with styled():
        fig = new_figure(6.4, 5.0)
        ax = fig.subplots()
        for kept, colour, name in ((True, KEPT, "kept"), (False, DISCARDED, "discarded")):
            pts = [p for p in points if bool(p.get("kept")) == kept]
            if pts:
                ax.scatter([p["early"] * 100 for p in pts], [p["final"] * 100 for p in pts],
                           color=colour, label=name, s=28, zorder=3)
        for p in points:
            if p.get("winner") or p.get("best"):
                ax.annotate(("winner " if p.get("winner") else "") + ("true best" if
                            p.get("best") else ""), (p["early"] * 100, p["final"] * 100),
                            textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xlabel("Early validation accuracy (%)")
        ax.set_ylabel("Final validation accuracy (%)")
        rho, tau = stats.get("spearman"), stats.get("kendall")
        if rho is not None:
            ax.set_title(f"Spearman ρ = {rho:.2f}, Kendall τ = {tau:.2f}")
        ax.legend(loc="best")
    return fig


def curves_of(run: dict) -> dict[str, Any]:
    """The curve dict :func:`lr_curve_figure` wants, from a stored ``lr-find`` run."""
    m = run.get("metrics") or {}
    c = m.get("curve") or {"lr": [], "loss": [], "accuracy": []}
    val = [(e.get("lr"), e.get("val_accuracy")) for e in run.get("epochs") or []]
    return {"label": f"seed {run.get('seed')}", "lr": c["lr"], "loss": c["loss"],
            "accuracy": c["accuracy"], "val": val}


def save_lr_plot(runs: list[dict], path: str, *, lower: float | None, upper: float | None,
                 log_x: bool | None = None, title: str = "") -> str:
    """Write the range-test figure of ``runs`` (stored lr-find runs) to ``path`` (PNG, SVG
    or PDF by extension) and return the path."""
    from pathlib import Path

    fig = lr_curve_figure([curves_of(r) for r in runs], lower=lower, upper=upper, log_x=log_x,
                          title=title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return str(path)
