"""Compare detectors: train several backbones/settings on the same pages, then report.

Each variant is the base config plus ``--set`` style overrides; all runs join one store
group (kind ``detect-compare``), and the report is built from the store alone.

>>> group = compare_detectors("examples/detect-synth.yaml",
...                           [["model.backbone=resnet18"], ["model.backbone=vovnet19-lite"]],
...                           report="out/detect.html")              # doctest: +SKIP
>>> group["report"]["html"]                                          # doctest: +SKIP
'out/detect.html'
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import write_text
from ..errors import ConvbenchError, StoreError
from ..report import fmt
from ..report.exports import table_markdown
from ..report.html import Cell, escape, figure, page, pareto_front, table
from ..report.plots import STYLE, colours
from ..report.writer import check_report_path
from ..store import Store
from .backbones import check_backbone
from .config import DetectConfig, apply_overrides
from .train import Stopped, prepare, train_detector


def variant_label(sets: list[str]) -> str:
    """A short label from overrides: values of ``model.backbone`` first, then ``key=value``.

    >>> variant_label(["model.backbone=vovnet39", "train.batch_size=4"])
    'vovnet39 batch_size=4'
    """
    parts = []
    for item in sets:
        key, _, value = item.partition("=")
        parts.append(value if key.strip() == "model.backbone" else
                     f"{key.strip().rsplit('.', 1)[-1]}={value.strip()}")
    return " ".join(parts) or "base"


def compare_detectors(base: DetectConfig | dict | str | Path | None,
                      variants: list[list[str]], *, store: Store | str | None = None,
                      name: str | None = None, report: str | Path | None = None,
                      quiet: bool = True,
                      on_data_issues: Callable[[list[str]], None] | None = None
                      ) -> dict[str, Any]:
    """Train each variant in turn (one failure does not stop the others); record a group.

    Returns the group dict plus ``errors`` (variants that failed) and ``report`` (path).
    ``on_data_issues`` gets the annotation problems, once per distinct data set.
    """
    if not variants:
        raise ConvbenchError("Nothing to compare: give at least one variant (e.g. a backbone).")
    if report is not None:
        check_report_path(report)  # a bad path fails now, not after hours of training
    cfg = prepare(base)
    told: set[tuple[str, ...]] = set()

    def tell_once(lines: list[str]) -> None:
        # Variants usually share the data: its problems are news only the first time. (The
        # first line names each run's own log, so the messages below it are the key.)
        key = tuple(lines[1:] or lines)
        if on_data_issues is not None and key not in told:
            told.add(key)
            on_data_issues(lines)

    configs = []
    for sets in variants:
        label = variant_label(sets)
        c = apply_overrides(cfg, sets)
        check_backbone(c.model.backbone)  # reject typos before hours of training
        configs.append(c.model_copy(update={"name": label}))
    store = store if isinstance(store, Store) else Store(store)
    group_id = store.create_group(kind="detect-compare", name=name, config={
        "base": cfg.model_dump(mode="json"), "variants": variants})
    errors = []
    for number, c in enumerate(configs, 1):
        if not quiet:  # epoch lines alone would not say which variant they belong to
            print(f"variant {number}/{len(configs)}: {c.name}", file=sys.stderr, flush=True)
        try:
            train_detector(c, store=store, quiet=quiet, group_id=group_id,
                           on_data_issues=tell_once)
        except ConvbenchError as err:
            errors.append(f"{c.name}: {err}")
        except (KeyboardInterrupt, Stopped):
            store.update_group(group_id, status="stopped")
            raise
    store.update_group(group_id, status="completed" if not errors else "failed",
                       metrics={"errors": errors})
    group = store.get_group(group_id)
    group["errors"] = errors
    if report is not None:
        group["report"] = {k: str(p) for k, p in
                           write_detect_report(store, group_id, report).items()}
    return group


SUMMARY_COLUMNS = [
    ("label", "Variant"), ("backbone", "Backbone"), ("status", "Status"),
    ("box_AP", "Box AP"), ("box_AP50", "Box AP50"), ("box_AP75", "Box AP75"),
    ("mask_AP", "Mask AP"), ("mask_AP50", "Mask AP50"), ("mask_AP75", "Mask AP75"),
    ("iterations", "Iterations"), ("epochs", "Epochs"), ("train_time_s", "Train time"),
    ("iters_per_s", "Iter/s"), ("peak_memory_bytes", "Peak memory"), ("params_total", "Params"),
    ("energy_kwh", "Energy (kWh)"), ("cost", "Cost"),
]
BEST = {"box_AP": "max", "box_AP50": "max", "box_AP75": "max", "mask_AP": "max",
        "mask_AP50": "max", "mask_AP75": "max", "train_time_s": "min", "iters_per_s": "max",
        "peak_memory_bytes": "min", "params_total": "min", "energy_kwh": "min", "cost": "min"}


def _label(run: dict) -> str:
    """A variant's name in tables and legends (its run name, else its id)."""
    return run.get("name") or run["id"]


def _duration_cell(seconds: float | None) -> Cell:
    return Cell(fmt.number(seconds), fmt.duration(seconds))


def _summary_row(run: dict) -> dict[str, Any]:
    m = run.get("metrics") or {}
    cfg = run.get("config") or {}
    row: dict[str, Any] = {"label": _label(run),
                           "backbone": cfg.get("model", {}).get("backbone"),
                           "status": run["status"]}
    for key, _ in SUMMARY_COLUMNS[3:]:
        row[key] = _ap_cell(m.get(key)) if "_AP" in key else m.get(key)
    row["train_time_s"] = _duration_cell(m.get("train_time_s"))
    row["peak_memory_bytes"] = Cell(fmt.number(m.get("peak_memory_bytes")),
                                    fmt.size_bytes(m.get("peak_memory_bytes")))
    row["params_total"] = Cell(fmt.number(m.get("params_total")), fmt.count(m.get("params_total")))
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


BASE_COLUMNS = [("label", "Variant"), ("train_time_s", "Train time"), ("d_time", "Δ time"),
                ("energy_kwh", "Energy (kWh)"), ("d_energy", "Δ energy"),
                ("d_box", "Δ box AP (points)"), ("d_mask", "Δ mask AP (points)")]


def _base_case_table(runs: list[dict]) -> str:
    """Each variant against the first (the base case): time and energy saved, AP gained —
    the study's "savings against a base case"."""
    base = runs[0].get("metrics") or {}
    rows = []
    for index, run in enumerate(runs):
        m = run.get("metrics") or {}
        row: dict[str, Any] = {
            "label": _label(run),
            "train_time_s": _duration_cell(m.get("train_time_s")),
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
    best = {"d_time": "min", "d_energy": "min", "d_box": "max", "d_mask": "max"}
    base_label = escape(_label(runs[0]))
    return (table(BASE_COLUMNS, rows, best) + f'<p class="note">Base case: {base_label} '
            "(the first variant). Δ time and Δ energy are relative changes (negative = saved); "
            "Δ AP is in AP points (AP × 100).</p>")


def _ap_cell(value: float | None) -> Cell | None:
    """AP with three decimals in every row, so columns line up (1 reads as 1.000)."""
    number = fmt.number(value)
    return None if number is None else Cell(number, f"{number:.3f}")


# Columns that, when every variant has the same value, move into the note under the table
# (17 columns do not fit a laptop screen).
SHARED_WHEN_EQUAL = {"status": "{}", "iterations": "{} iterations", "epochs": "{:.4g} epochs"}


def _summary_columns(rows: list[dict]) -> tuple[list[tuple[str, str]], str]:
    """The summary's columns without repeats, and a sentence naming what all variants share.

    >>> same = {"status": "completed", "iterations": 600, "epochs": 26.67}
    >>> cols, shared = _summary_columns([{"label": "a", "backbone": "a", **same},
    ...                                  {"label": "b", "backbone": "b", **same}])
    >>> [key for key, _ in cols][:3], shared
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
    return ([c for c in SUMMARY_COLUMNS if c[0] not in drop],
            f"All variants: {shared}. " if shared else "")


def _per_class_table(runs: list[dict]) -> str:
    classes = next((r["metrics"].get("classes") for r in runs if r.get("metrics")), None) or []
    columns = [("label", "Variant")]
    rows = []
    for kind in ("box", "mask"):
        for c in classes:
            columns.append((f"{kind}:{c}", f"{kind} AP {c}"))
    for run in runs:
        m = run.get("metrics") or {}
        row = {"label": _label(run)}
        for kind in ("box", "mask"):
            per = m.get(f"{kind}_AP_per_class") or {}
            for c in classes:
                row[f"{kind}:{c}"] = _ap_cell(per.get(c))
        rows.append(row)
    return table(columns, rows, best={k: "max" for k, _ in columns[1:]})


def _new_figure(width: float, height: float) -> Figure:
    # Object API with an Agg canvas: no pyplot state, safe from worker threads.
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _curves_figure(runs: list[dict], points_of: Callable[[dict], list[tuple[float, float]]],
                   ylabel: str, title: str, caption: str, log: bool = False) -> str | None:
    """One line per variant against the iteration; None when no run has points."""
    labels = [_label(r) for r in runs]
    colour = colours(labels)
    series = [points_of(run) for run in runs]
    if not any(series):
        return None
    with matplotlib.rc_context(STYLE):
        fig = _new_figure(7.5, 3.6)
        ax = fig.add_subplot()
        for points, label in zip(series, labels, strict=True):
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=label, color=colour[label])
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.legend()
    return figure(fig, caption=caption, alt=title.lower())


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
    labels = [_label(r) for r in runs]
    colour = colours(labels)
    pts = [(fmt.number((r.get("metrics") or {}).get(x_key)),
            fmt.number((r.get("metrics") or {}).get("box_AP"))) for r in runs]
    if sum(1 for x, y in pts if x is not None and y is not None) == 0:
        return None
    front = pareto_front(pts)
    with matplotlib.rc_context(STYLE):
        fig = _new_figure(6.5, 3.8)
        ax = fig.add_subplot()
        for (x, y), label in zip(pts, labels, strict=True):
            if x is not None and y is not None:
                ax.scatter([x], [y], color=colour[label], label=label, s=40, zorder=3)
        if len(front) > 1:
            ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], color="#8c959f",
                    linestyle="--", linewidth=1, zorder=2, label="Pareto front")
        ax.set_xlabel(x_label)
        ax.set_ylabel("box AP (test)")
        ax.set_title(f"Box AP against {x_label.split(' (')[0].lower()}")
        ax.legend()
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


def write_detect_report(store: Store, group_id: str, path: str | Path) -> dict[str, Path]:
    """Write the report of a detection comparison group, from the store only (see
    :func:`write_detect_runs_report`)."""
    group = store.get_group(group_id)
    if group.get("kind") != "detect-compare":
        raise StoreError(f"Group {group_id} is a {group.get('kind')} group, not detect-compare.")
    runs = [store.get_run(i) for i in group["run_ids"]]
    return write_detect_runs_report(
        runs, path, title=group.get("name") or f"Detection comparison {group_id}",
        subtitle=f"{len(runs)} runs · group {group_id}",
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
        raise StoreError("No detection runs to report.")
    path = check_report_path(path)
    rows = [_summary_row(r) for r in runs]
    columns, shared = _summary_columns(rows)
    sections = [("Summary", table(columns, rows, BEST)
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
    plots = [p for p in (_ap_cost_figure(runs, "train_time_s", "train time (s)"),
                         _ap_cost_figure(runs, "cost", "cost (energy × price)")) if p]
    if plots:
        sections.append(("AP against cost", '<div class="grid">' + "".join(plots) + "</div>"))
    sections.append(("Sample predictions", _overlays(runs)))
    if errors:
        sections.append(("Failed variants", "".join(
            f'<p class="callout">{escape(e)}</p>' for e in errors)))
    html = page(title, sections, subtitle=subtitle or f"{len(runs)} runs")
    raw = [_raw_row(run) for run in runs]
    texts = {"md": f"# {title}\n\n{table_markdown(columns, rows, BEST)}\n",
             "json": json.dumps({"title": title, "runs": raw}, indent=2, default=str) + "\n",
             "csv": _csv(raw)}
    written = {kind: write_text(path.with_suffix(f".{kind}"), text)
               for kind, text in texts.items()}
    return {"html": write_text(path, html), **written}


RAW_KEYS = [key for key, _ in SUMMARY_COLUMNS[3:]] + ["energy_method", "eval_time_s"]


def _raw_row(run: dict) -> dict[str, Any]:
    """One variant's numbers in SI units (seconds, bytes, kWh, AP as a fraction)."""
    m = run.get("metrics") or {}
    return {"label": _label(run), "run_id": run["id"],
            "backbone": ((run.get("config") or {}).get("model") or {}).get("backbone"),
            "status": run["status"], **{k: m.get(k) for k in RAW_KEYS},
            "box_AP_per_class": m.get("box_AP_per_class"),
            "mask_AP_per_class": m.get("mask_AP_per_class")}


def _csv(raw: list[dict[str, Any]]) -> str:
    scalar = [k for k in raw[0] if not k.endswith("_per_class")]
    per_class = sorted({f"{kind}_AP.{c}" for row in raw for kind in ("box", "mask")
                        for c in row.get(f"{kind}_AP_per_class") or {}})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(scalar + per_class)
    for row in raw:
        values = [row[k] for k in scalar]
        for key in per_class:
            kind, cls = key.split("_AP.", 1)
            values.append((row.get(f"{kind}_AP_per_class") or {}).get(cls))
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()
