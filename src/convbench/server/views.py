"""What the Run and Compare pages show, built from stored runs by the report's own pieces
(:mod:`convbench.report`): the summary table with the best value per column marked, the
config fields that differ, per-class accuracy and confusion matrices are the report's
sections; curves are the report's per-variant means over seeds; the Pareto front is the
report's :func:`~convbench.report.pareto.pareto_front`. So the page and ``convbench report``
of the same runs show the same numbers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import StoreError
from ..report import fmt
from ..report.columns import COLUMNS
from ..report.pareto import pareto_front
from ..report.plots import COST_AXES
from ..report.sections import Context, section
from ..report.summary import mean_curves, metrics_of
from ..report.writers.detection import detect_sections
from ..store import Store
from . import control

MAX_COMPARE = 50  # runs on one Compare page
RUN_SECTIONS = ("Per-class accuracy", "Confusion matrices")
OVERLAY_PAGES = 12  # test pages with predicted masks on a detection run's page
COMPARE_SECTIONS = ("Summary", "Configuration differences", "Runs not completed")


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """A run's metrics as labelled, formatted rows: the report's columns first (in its
    order and units), then any other scalar metric as it is.

    >>> metric_rows({"test_accuracy": 0.9, "note": "x"})
    [{'key': 'test_accuracy', 'label': 'Test accuracy', 'text': '90.0 %'}, \
{'key': 'note', 'label': 'note', 'text': 'x'}]
    """
    rows, known = [], set()
    for column in COLUMNS:
        known.add(column.key)
        value = metrics.get(column.key)
        if value is not None and column.format is not None:
            rows.append({"key": column.key, "label": column.label, "text": column.format(value)})
    for key, value in metrics.items():
        if key in known or isinstance(value, dict | list) or value is None:
            continue
        text = fmt.sig(value, 4) if isinstance(value, float) else str(value)
        rows.append({"key": key, "label": key, "text": text})
    return rows


def run_detail(store: Store, run_id: str) -> dict[str, Any]:
    """The Run page: the run, its config as YAML, environment, epochs, formatted metrics,
    artifacts to download, its error, whether the page can pause it, and the report's
    per-class and confusion sections for a finished classification run (a detection run:
    the detection report's sections)."""
    run = store.get_run(store.resolve_id(run_id))
    metrics = metrics_of(run)
    run_dir = store.run_dir(run["id"])
    sections = []
    if run["kind"] == "detect":
        # The detection report's own sections (AP per class, loss, memory, overlays).
        sections = detect_sections([run], overlays_per_run=OVERLAY_PAGES)
    elif run["status"] == "completed" and metrics.get("confusion"):
        ctx = Context.build([run], None, _now())
        sections = [(h, html) for h in RUN_SECTIONS if (html := section(ctx, h))]
    return {
        "id": run["id"], "name": run.get("name"), "kind": run["kind"],
        "status": run["status"], "seed": run.get("seed"), "group_id": run.get("group_id"),
        "device": run.get("device"), "started_at": run.get("started_at"),
        "ended_at": run.get("ended_at"), "config": run.get("config"),
        "config_yaml": yaml.safe_dump(run.get("config") or {}, sort_keys=False),
        "env": run.get("env") or {}, "epochs": run.get("epochs") or [],
        "metrics": metric_rows(metrics), "error": metrics.get("error"),
        "artifacts": sorted(k for k, p in (run.get("artifacts") or {}).items()
                            if Path(p).is_file()),
        "controllable": control.worker_of(run_dir) is not None,
        "sections": sections,
    }


def artifact_path(store: Store, run_id: str, name: str) -> Path:
    """The file of the run's artifact ``name``; only files a run recorded, inside its folder
    (the server never serves any other file)."""
    run = store.get_run(store.resolve_id(run_id))
    stored = (run.get("artifacts") or {}).get(name)
    folder = store.run_dir(run["id"]).resolve()
    path = Path(stored).resolve() if stored else None
    if path is None or not path.is_file() or folder not in path.parents:
        raise StoreError(f"Run {run['id']} has no artifact {name!r}.")
    return path


def lr_curve(store: Store, run_id: str) -> dict[str, Any]:
    """An LR range test's smoothed loss and accuracy against the LR (its ``lr_find``
    artifact, as ``convbench lr-find`` records it) and the bounds it suggests."""
    run = store.get_run(store.resolve_id(run_id))
    if run["kind"] != "lr-find":
        raise StoreError(f"Run {run['id']} is a {run['kind']} run, not an LR range test.")
    curve = json.loads(artifact_path(store, run["id"], "lr_find").read_text())
    m = run.get("metrics") or {}
    return {"id": run["id"], "lr": curve["lr"], "loss": curve["loss_smooth"],
            "accuracy": curve["accuracy_smooth"], "lower": m.get("lr_lower"),
            "upper": m.get("lr_upper"), "reason": m.get("bounds_reason"),
            "sweep": m.get("sweep"), "stop_reason": m.get("stop_reason")}


def compare(store: Store, run_ids: list[str]) -> dict[str, Any]:
    """The Compare page of ``run_ids``: the report's summary (best per column marked) and
    config-difference tables, mean ± std curves per variant, and accuracy against each cost
    axis with its Pareto front."""
    if not run_ids:
        raise StoreError("Select at least one run to compare.")
    if len(run_ids) > MAX_COMPARE:
        raise StoreError(f"Compare at most {MAX_COMPARE} runs at once.")
    runs = [store.get_run(store.resolve_id(r)) for r in run_ids]
    ctx = Context.build(runs, None, _now())
    curves = [{"label": v.label, "colour": ctx.colour[v.label], "curves": mean_curves(v)}
              for v in ctx.variants if v.completed]
    return {
        "subtitle": ctx.subtitle,
        "sections": [(h, html) for h in COMPARE_SECTIONS if (html := section(ctx, h))],
        "curves": curves,
        "axes": [_cost_axis(ctx, key, name, unit) for key, name, unit in COST_AXES],
        "run_ids": [r["id"] for r in runs],
    }


def _cost_axis(ctx: Context, key: str, name: str, unit: str) -> dict[str, Any]:
    points = []
    for row in ctx.rows:
        x = _stat(row, key, "mean")
        y = _stat(row, "test_accuracy", "mean")
        points.append({"label": row["label"], "colour": ctx.colour[row["label"]], "x": x,
                       "y": y, "y_std": _stat(row, "test_accuracy", "std")})
    front = pareto_front([(p["x"], p["y"]) for p in points])
    return {"key": key, "name": name, "unit": unit, "points": points, "front": front}


def _stat(row: dict, key: str, stat: str) -> float | None:
    return fmt.number(((row.get("metrics") or {}).get(key) or {}).get(stat))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
