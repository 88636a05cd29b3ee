"""The detection comparison report: AP and cost per detector run, against the first (the base
case), training loss, memory, AP against cost and sample predictions.

Written from the store alone (run dicts with ``epochs`` and artifacts), with the summary
table beside it as Markdown and the raw numbers as CSV and JSON.

>>> from convbench.store import Store                                  # doctest: +SKIP
>>> store = Store("runs.db")                                           # doctest: +SKIP
>>> write_detect_report(store, "5c1e0a77", "out/detect.html")["md"]    # doctest: +SKIP
PosixPath('out/detect.md')
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import fmt
from ..columns import Column, value_cell
from ..exports import csv_table, json_text, table_markdown
from ..html import Cell, escape, figure, page, table
from ..plots import colours, front_figure, lines_figure
from ..writer import WRITERS, ReportError, check_report_path, write_files

DEFAULT_TITLE = "convbench comparison"


def ap_text(value: float | None) -> str:
    """AP with three decimals in every row, so columns line up (1 reads as 1.000).

    >>> ap_text(1), ap_text(None)
    ('1.000', '—')
    """
    return fmt.plain(value, 3)


SUMMARY_COLUMNS = [
    Column("label", "Variant"), Column("backbone", "Backbone"), Column("status", "Status"),
    Column("box_AP", "Box AP", ap_text, "max"), Column("box_AP50", "Box AP50", ap_text, "max"),
    Column("box_AP75", "Box AP75", ap_text, "max"), Column("mask_AP", "Mask AP", ap_text, "max"),
    Column("mask_AP50", "Mask AP50", ap_text, "max"),
    Column("mask_AP75", "Mask AP75", ap_text, "max"),
    Column("iterations", "Iterations"), Column("epochs", "Epochs"),
    Column("train_time_s", "Train time", fmt.duration, "min"),
    Column("iters_per_s", "Iter/s", best="max"),
    Column("peak_memory_bytes", "Peak memory", fmt.size_bytes, "min"),
    Column("params_total", "Params", fmt.count, "min"),
    Column("energy_kwh", "Energy (kWh)", best="min"), Column("cost", "Cost", best="min"),
]
METRIC_COLUMNS = SUMMARY_COLUMNS[3:]
RAW_KEYS = [c.key for c in METRIC_COLUMNS] + ["energy_method", "eval_time_s"]
# Columns that, when every variant has the same value, move into the note under the table
# (17 columns do not fit a laptop screen).
SHARED_WHEN_EQUAL = {"status": "{}", "iterations": "{} iterations", "epochs": "{:.4g} epochs"}


def _label(run: dict) -> str:
    """A variant's name in tables and legends (its run name, else its id)."""
    return run.get("name") or run["id"]


def _summary_row(run: dict) -> dict[str, Any]:
    m = run.get("metrics") or {}
    cfg = run.get("config") or {}
    row: dict[str, Any] = {"label": _label(run),
                           "backbone": cfg.get("model", {}).get("backbone"),
                           "status": run["status"]}
    for column in METRIC_COLUMNS:
        row[column.key] = value_cell(column, m.get(column.key))
    if m.get("energy_estimated"):
        row["energy_kwh"] = Cell(fmt.number(m.get("energy_kwh")), fmt.sig(m.get("energy_kwh")),
                                 sub="estimate", title=f"method: {m.get('energy_method')}")
    return row


def _change(value: float | None, base: float | None) -> Cell:
    """Relative change against the base case, e.g. −82.1 % (energy saved)."""
    v, b = fmt.number(value), fmt.number(base)
    if v is None or not b:
        return Cell(None, fmt.MISSING)
    change = (v - b) / b
    return Cell(change, f"{change * 100:+.1f} %".replace("-", "−"))


def _points(value: float | None, base: float | None) -> Cell:
    """AP difference against the base case in AP points (AP × 100)."""
    v, b = fmt.number(value), fmt.number(base)
    if v is None or b is None:
        return Cell(None, fmt.MISSING)
    return Cell(v - b, f"{(v - b) * 100:+.2f}".replace("-", "−"))


BASE_COLUMNS = [Column("label", "Variant"),
                Column("train_time_s", "Train time", fmt.duration),
                Column("d_time", "Δ time", best="min"), Column("energy_kwh", "Energy (kWh)"),
                Column("d_energy", "Δ energy", best="min"),
                Column("d_box", "Δ box AP (points)", best="max"),
                Column("d_mask", "Δ mask AP (points)", best="max")]


def _base_case_table(runs: list[dict]) -> str:
    """Each variant against the first (the base case): time and energy saved, AP gained —
    the study's "savings against a base case"."""
    base = runs[0].get("metrics") or {}
    rows = []
    for index, run in enumerate(runs):
        m = run.get("metrics") or {}
        row: dict[str, Any] = {
            "label": _label(run),
            "train_time_s": value_cell(BASE_COLUMNS[1], m.get("train_time_s")),
            "energy_kwh": m.get("energy_kwh"),
        }
        if index == 0:
            # The base against itself changes by zero: a number, so it aligns and ranks.
            row.update({key: Cell(0.0, "base") for key in ("d_time", "d_energy", "d_box",
                                                             "d_mask")})
        else:
            row.update(d_time=_change(m.get("train_time_s"), base.get("train_time_s")),
                       d_energy=_change(m.get("energy_kwh"), base.get("energy_kwh")),
                       d_box=_points(m.get("box_AP"), base.get("box_AP")),
                       d_mask=_points(m.get("mask_AP"), base.get("mask_AP")))
        rows.append(row)
    base_label = escape(_label(runs[0]))
    return (table(BASE_COLUMNS, rows) + f'<p class="note">Base case: {base_label} '
            "(the first variant). Δ time and Δ energy are relative changes (negative = saved); "
            "Δ AP is in AP points (AP × 100).</p>")


def _summary_columns(rows: list[dict]) -> tuple[list[Column], str]:
    """The summary's columns without repeats, and a sentence naming what all variants share.

    >>> same = {"status": "completed", "iterations": 600, "epochs": 26.67}
    >>> cols, shared = _summary_columns([{"label": "a", "backbone": "a", **same},
    ...                                  {"label": "b", "backbone": "b", **same}])
    >>> [c.key for c in cols][:3], shared
    (['label', 'box_AP', 'box_AP50'], 'All variants: completed, 600 iterations, 26.67 epochs. ')
    """
    drop = set()
    if all(row["label"] == row["backbone"] for row in rows):  # variants named by backbone
        drop.add("backbone")
    same = [key for key in SHARED_WHEN_EQUAL
            if len(rows) > 1 and len({repr(row.get(key)) for row in rows}) == 1
            and rows[0].get(key) is not None]
    drop.update(same)
    shared = ", ".join(SHARED_WHEN_EQUAL[key].format(rows[0][key]) for key in same)
    return ([c for c in SUMMARY_COLUMNS if c.key not in drop],
            f"All variants: {shared}. " if shared else "")


def _per_class_table(runs: list[dict]) -> str:
    classes = next((r["metrics"].get("classes") for r in runs if r.get("metrics")), None) or []
    columns = [Column("label", "Variant")] + [
        Column(f"{kind}:{c}", f"{kind} AP {c}", ap_text, "max")
        for kind in ("box", "mask") for c in classes]
    rows = []
    for run in runs:
        m = run.get("metrics") or {}
        row = {"label": _label(run)}
        for column in columns[1:]:
            kind, cls = column.key.split(":", 1)
            value = (m.get(f"{kind}_AP_per_class") or {}).get(cls)
            # A class without a value shows a dash, like any missing cell.
            row[column.key] = None if value is None else value_cell(column, value)
        rows.append(row)
    return table(columns, rows)


def _curves_figure(runs: list[dict], points_of: Callable[[dict], list[tuple[float, float]]],
                   ylabel: str, title: str, caption: str, log: bool = False) -> str | None:
    """One line per variant against the iteration; None when no run has points."""
    series = [(_label(r), points_of(r)) for r in runs]
    fig = lines_figure(series, colours([label for label, _ in series]), xlabel="iteration",
                       ylabel=ylabel, title=title, log=log)
    return None if fig is None else figure(fig, caption=caption, alt=title.lower())


def _memory_trace(run: dict) -> list[tuple[float, float]]:
    return [(e["iteration"], e["memory_bytes"] / 1e9) for e in run.get("epochs") or []
            if e.get("memory_bytes") is not None and e.get("iteration") is not None]


def _losses(run: dict) -> list[tuple[float, float]]:
    path = (run.get("artifacts") or {}).get("losses")
    if path and Path(path).is_file():
        raw = json.loads(Path(path).read_text())
        out = []
        for i in range(len(raw)):
            window = [v for _, v in raw[max(0, i - 9): i + 1]]
            out.append((raw[i][0], sum(window) / len(window)))
        return out
    return [(e["iteration"], e["train_loss"]) for e in run.get("epochs") or []
            if e.get("train_loss") is not None]


def _ap_cost_figure(runs: list[dict], x_key: str, x_label: str) -> str | None:
    points = [(_label(r), (r.get("metrics") or {}).get(x_key),
               (r.get("metrics") or {}).get("box_AP")) for r in runs]
    fig = front_figure(points, colours([label for label, _, _ in points]), xlabel=x_label,
                       ylabel="box AP (test)",
                       title=f"Box AP against {x_label.split(' (')[0].lower()}")
    if fig is None:
        return None
    return figure(fig, caption=f"Box AP against {x_label}; the dashed line joins the "
                  "variants no other beats on both.", alt=f"box AP against {x_label}")


def _overlays(runs: list[dict], per_run: int = 2) -> str:
    cells = []
    for run in runs:
        folder = (run.get("artifacts") or {}).get("predictions")
        if not folder:
            continue
        for png in sorted((Path(folder) / "overlays").glob("*.png"))[:per_run]:
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            caption = f"{run.get('name') or run['id']} — {png.stem}"
            # Pages may be small; show them at a readable size, never wider than the cell.
            cells.append(f'<figure><img src="data:image/png;base64,{data}" '
                         'style="width:100%;max-width:520px" '
                         f'alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption>'
                         "</figure>")
    if not cells:
        return '<p class="note">No overlays were saved.</p>'
    legend = ('<p class="note">Predicted regions with score ≥ 0.5 on held-out pages: '
              '<span style="color:#dc1e1e">staff</span>, '
              '<span style="color:#1ea028">lyrics</span>, '
              '<span style="color:#1e46dc">drop-capital</span>.</p>')
    return legend + '<div class="grid">' + "".join(cells) + "</div>"


def detect_sections(runs: list[dict], overlays_per_run: int = 2) -> list[tuple[str, str]]:
    """The report's sections for detection runs, as ``(title, html)``: summary, AP per class
    (box and mask), against the base case and AP against cost (several runs), training loss,
    memory and sample predictions (``overlays_per_run`` pages each, predicted masks in the
    fixed class colours). The detection report and the web app's run page both show these.
    """
    rows = [_summary_row(r) for r in runs]
    columns, shared = _summary_columns(rows)
    sections = [("Summary", table(columns, rows)
                 + f'<p class="note">{escape(shared)}AP on the held-out test pages (COCO, IoU '
                 "0.50:0.95; AP50/AP75 at one IoU). Cost is energy × price per kWh.</p>"),
                ("AP per class", _per_class_table(runs)),
                *([("Against the base case", _base_case_table(runs))] if len(runs) > 1 else []),
                ("Training loss", _curves_figure(
                    runs, _losses, "training loss (sum of heads)", "Training loss",
                    "Training loss per iteration (moving average of 10).", log=True)
                 or '<p class="note">No training losses were recorded.</p>')]
    memory = _curves_figure(runs, _memory_trace, "memory (GB)", "Memory",
                            "Memory at the end of each epoch: process RSS on the CPU, peak "
                            "allocated tensors on a GPU.")
    if memory:
        sections.append(("Memory", memory))
    # One run alone is one point: nothing to weigh against anything.
    plots = [p for p in (_ap_cost_figure(runs, "train_time_s", "train time (s)"),
                         _ap_cost_figure(runs, "cost", "cost (energy × price)")) if p] \
        if len(runs) > 1 else []
    if plots:
        sections.append(("AP against cost", '<div class="grid">' + "".join(plots) + "</div>"))
    sections.append(("Sample predictions", _overlays(runs, overlays_per_run)))
    return sections


def write_detect_report(store: Any, group_id: str, path: str | Path) -> dict[str, Path]:
    """Write the report of a detection comparison group, from the store only (see
    :func:`write_detect_runs_report`)."""
    group = store.get_group(group_id)
    if group.get("kind") != "detect-compare":
        raise ReportError(f"Group {group_id} is a {group.get('kind')} group, not "
                          "detect-compare.")
    runs = [store.get_run(i) for i in group["run_ids"]]
    return _write(runs, path, group=group)


@WRITERS.register("detect-compare")
def _write(runs: list[dict], path: str | Path, *, group: dict | None = None, store: Any = None,
           title: str | None = None) -> dict[str, Path]:
    if group is None:
        return write_detect_runs_report(runs, path, title=title or DEFAULT_TITLE)
    return write_detect_runs_report(
        runs, path, title=title or group.get("name") or f"Detection comparison {group['id']}",
        subtitle=f"{len(runs)} runs · group {group['id']}",
        errors=(group.get("metrics") or {}).get("errors") or [])


def write_detect_runs_report(runs: list[dict], path: str | Path, *, title: str,
                             subtitle: str = "", errors: list[str] | None = None
                             ) -> dict[str, Path]:
    """Write the HTML report of detection runs (store run dicts, with ``epochs``), with the
    summary table beside it as Markdown (``.md``), and raw numbers as ``.csv`` and ``.json``.
    Returns the paths by kind (``html``, ``md``, ``csv``, ``json``), as classification
    reports do.
    """
    if not runs:
        raise ReportError("No detection runs to report.")
    path = check_report_path(path)
    rows = [_summary_row(r) for r in runs]
    columns, _ = _summary_columns(rows)
    sections = detect_sections(runs)
    if errors:
        sections.append(("Failed variants", "".join(
            f'<p class="callout">{escape(e)}</p>' for e in errors)))
    raw = [_raw_row(run) for run in runs]
    return write_files(path, {
        "html": page(title, sections, subtitle=subtitle or f"{len(runs)} runs"),
        "md": f"# {title}\n\n{table_markdown(columns, rows)}\n",
        "json": json_text({"title": title, "runs": raw}),
        "csv": _csv(raw),
    })


def _raw_row(run: dict) -> dict[str, Any]:
    """One variant's numbers in SI units (seconds, bytes, kWh, AP as a fraction)."""
    m = run.get("metrics") or {}
    return {"label": _label(run), "run_id": run["id"],
            "backbone": ((run.get("config") or {}).get("model") or {}).get("backbone"),
            "status": run["status"], **{k: m.get(k) for k in RAW_KEYS},
            "box_AP_per_class": m.get("box_AP_per_class"),
            "mask_AP_per_class": m.get("mask_AP_per_class")}


def _csv(raw: list[dict[str, Any]]) -> str:
    """The raw rows with per-class AP spread into ``box_AP.<class>`` columns."""
    scalar = [k for k in raw[0] if not k.endswith("_per_class")]
    per_class = sorted({f"{kind}_AP.{c}" for row in raw for kind in ("box", "mask")
                        for c in row.get(f"{kind}_AP_per_class") or {}})
    lines = []
    for row in raw:
        values = [row[k] for k in scalar]
        for key in per_class:
            kind, cls = key.split("_AP.", 1)
            values.append((row.get(f"{kind}_AP_per_class") or {}).get(cls))
        lines.append(values)
    return csv_table(scalar + per_class, lines)
