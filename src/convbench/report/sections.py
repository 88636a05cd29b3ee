"""The sections of the comparison page, each built from one :class:`Context`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import fmt, plots
from .columns import Column, cell, visible_columns
from .configdiff import canonical, differing_fields, flatten, split_environment
from .html import Cell, escape, figure, table
from .summary import (
    SEED_PATH,
    Variant,
    group_variants,
    mean_curves,
    metrics_of,
    seed_of,
    status_of,
    variant_rows,
)

CALLOUT_RUNS = 5  # incomplete runs named in the summary's warning; all are tabled below


@dataclass
class Context:
    """Everything the sections and exports of one report share."""

    runs: list[dict]
    variants: list[Variant]
    rows: list[dict]           # summary_table rows, in variant order
    columns: list[Column]      # metric columns shown
    colour: dict[str, str]     # variant label → plot colour
    label_of: dict[int, str]   # id(run dict) → its variant's label
    incomplete: list[dict]     # runs whose status is not "completed"
    subtitle: str

    @classmethod
    def build(cls, runs: list[dict], group: dict | None, when: str) -> Context:
        """Group and aggregate ``runs`` once for the whole report."""
        variants = group_variants(runs)
        rows = variant_rows(variants)
        return cls(
            runs=runs,
            variants=variants,
            rows=rows,
            columns=visible_columns(rows),
            colour=plots.colours([r["label"] for r in rows]),
            label_of={id(run): v.label for v in variants for run in v.runs},
            incomplete=[r for r in runs if status_of(r) != "completed"],
            subtitle=_subtitle(runs, rows, group, when),
        )

    def label(self, run: dict) -> str:
        """The label of the variant ``run`` belongs to."""
        return self.label_of[id(run)]


def html_sections(ctx: Context) -> list[tuple[str, str]]:
    """The page's ``(heading, html)`` sections; plots without data are left out."""
    sections = [("Summary", _summary_section(ctx))]
    if ctx.incomplete:
        sections.append(("Runs not completed", _incomplete_section(ctx)))
    for heading, content in [
        ("Learning curves", _curves_section(ctx)),
        ("Accuracy against cost", _cost_section(ctx)),
        ("Per-class accuracy", _per_class_section(ctx)),
        ("Confusion matrices", _confusion_section(ctx)),
    ]:
        if content:
            sections.append((heading, content))
    sections += [
        ("Configuration differences", _config_section(ctx)),
        ("Environment", _environment_section(ctx)),
        ("All runs", _runs_section(ctx)),
    ]
    return sections


def section(ctx: Context, heading: str) -> str | None:
    """One section of the page by its heading (the web app shows some of them on its own
    pages, so its numbers are the report's); None when it has nothing to show.

    >>> ctx = Context.build([{"id": "a", "config": {"model": {"name": "B2FL8"}}}], None, "now")
    >>> "B2FL8" in section(ctx, "Summary")
    True
    """
    builders = {"Summary": _summary_section, "Runs not completed": _incomplete_section,
                "Learning curves": _curves_section, "Accuracy against cost": _cost_section,
                "Per-class accuracy": _per_class_section,
                "Confusion matrices": _confusion_section,
                "Configuration differences": _config_section,
                "Environment": _environment_section, "All runs": _runs_section}
    if heading not in builders:
        raise KeyError(f"no report section {heading!r}; one of {', '.join(builders)}")
    if heading == "Runs not completed" and not ctx.incomplete:
        return None
    return builders[heading](ctx)


def _common(runs: list[dict], section: str, key: str) -> Any:
    values = {canonical(((r.get("config") or {}).get(section) or {}).get(key)) for r in runs}
    if len(values) == 1:
        return ((runs[0].get("config") or {}).get(section) or {}).get(key)
    return None


def _subtitle(runs: list[dict], rows: list[dict], group: dict | None, when: str) -> str:
    parts = []
    if group:
        kind = group.get("kind") or "group"
        name = group.get("name") or group.get("id")
        parts.append(f"{kind} {name}" if name is not None else str(kind))
    dataset = _common(runs, "data", "dataset")
    if dataset:
        classes = next((r["classes"] for r in rows if r.get("classes")), None)
        parts.append(f"data set {dataset}" + (f" ({len(classes)} classes)" if classes else ""))
    parts.append(f"{len(rows)} variant{'s' * (len(rows) != 1)}, "
                 f"{len(runs)} run{'s' * (len(runs) != 1)}")
    parts.append(f"generated {when}")
    return " · ".join(parts)


def _summary_section(ctx: Context) -> str:
    rows, columns, incomplete = ctx.rows, ctx.columns, ctx.incomplete
    table_rows = []
    for row in rows:
        runs_text = str(row["n"]) if row["n"] == row["runs"] else f"{row['n']} of {row['runs']}"
        sub = "" if row["status"] == "completed" else row["status"]
        out: dict[str, Any] = {
            "label": Cell(None, row["label"], swatch=ctx.colour[row["label"]],
                          title=", ".join(f"{k}={canonical(v)}" for k, v in row["config"].items())),
            "runs": Cell(float(row["n"]), runs_text, sub=sub),
        }
        out.update({c.key: cell(row, c) for c in columns})
        table_rows.append(out)
    head = [("label", "Model"), ("runs", "Runs")] + [(c.key, c.label) for c in columns]
    best = {c.key: c.best for c in columns if c.best}
    seeds = any(r["n"] > 1 for r in rows)
    note = (
        "Quality columns show the mean ± sample std over the completed seeds of each variant "
        "(median below the test accuracy); cost columns show the mean (hover for the spread). "
        if seeds else ""
    ) + ("The best value of each column is highlighted in green. Sizes in SI units "
         "(1 MB = 10⁶ bytes); FLOPs and MACs are per image, forward pass; latency is the median "
         "at batch size 1.")
    if any(r.get("energy_estimated") for r in rows):
        note += (" (est.): energy, and the cost derived from it, estimated from a power model "
                 "rather than metered.")
    target = next((r["metrics"]["common_target"]["mean"] for r in rows
                   if (r["metrics"].get("common_target") or {}).get("mean") is not None), None)
    if target is not None and any(c.key == "time_to_common_target_s" for c in columns):
        note += (f" Time to common target: training time until validation accuracy first "
                 f"reached {fmt.percent(target)}, the lowest best of these runs (set "
                 "measure.target_accuracy for a target of your own).")
    html = table(head, table_rows, best) + f'<p class="note">{escape(note)}</p>'
    if incomplete:
        names = ", ".join(f"{run_name(r)} ({status_of(r)})" for r in incomplete[:CALLOUT_RUNS])
        names += ", …" if len(incomplete) > CALLOUT_RUNS else ""
        html = (f'<p class="callout">{len(incomplete)} run{"s" * (len(incomplete) != 1)} did '
                f"not complete and {'are' if len(incomplete) != 1 else 'is'} left out of the "
                f"numbers: {escape(names)}. See “Runs not completed”.</p>") + html
    return html


def run_name(run: dict) -> str:
    """The run's name, else "run <id>"."""
    return str(run.get("name") or f"run {run.get('id')}")


def _number_cell(value: Any, formatter: Any) -> Cell:
    """A right-aligned cell showing ``value`` through one of the :mod:`fmt` formatters."""
    return Cell(fmt.number(value), formatter(value))


def _last(epochs: list[dict] | None, key: str) -> float | None:
    for row in reversed(epochs or []):
        if fmt.number(row.get(key)) is not None:
            return row[key]
    return None


def _run_cells(ctx: Context, run: dict) -> dict[str, Any]:
    """The cells every per-run table starts with: id, name, label, seed, status."""
    return {"id": Cell(None, str(run.get("id"))), "name": run.get("name"),
            "label": ctx.label(run), "seed": seed_of(run), "status": status_of(run)}


def _incomplete_section(ctx: Context) -> str:
    rows = []
    for run in ctx.incomplete:
        metrics = metrics_of(run)
        rows.append({
            **_run_cells(ctx, run),
            "epochs": _number_cell(metrics.get("epochs_run"), fmt.integer),
            "val": _number_cell(_last(run.get("epochs"), "val_accuracy"), fmt.percent),
            "loss": _number_cell(_last(run.get("epochs"), "train_loss"), fmt.sig),
            "test": _number_cell(metrics.get("test_accuracy"), fmt.percent),
            "error": metrics.get("error"),
        })
    columns = [("id", "Run"), ("name", "Name"), ("label", "Model"), ("seed", "Seed"),
               ("status", "Status"), ("epochs", "Epochs run"), ("val", "Last val. accuracy"),
               ("loss", "Last train loss"), ("test", "Test accuracy")]
    if any(r["error"] for r in rows):
        columns.append(("error", "Error"))
    return table(columns, rows) + (
        '<p class="note">These runs are listed for the record; their metrics are not part of '
        "the averages above.</p>"
    )


def _curves_section(ctx: Context) -> str | None:
    curves = {v.label: mean_curves(v) for v in ctx.variants if v.completed}
    if not any(c["train_loss"]["epoch"] for c in curves.values()):
        return None
    fig = plots.learning_curves_figure(curves, ctx.colour)
    return figure(fig, tight=False, caption="Mean over completed seeds; the band is ± one standard "
                  "deviation where several seeds ran.", alt="Learning curves")


def _cost_section(ctx: Context) -> str | None:
    fig = plots.cost_figure(ctx.rows, ctx.colour)
    if fig is None:
        return None
    return figure(fig, tight=False, alt="Test accuracy against cost", caption=(
        "Test accuracy (mean ± std over seeds) against training and model cost. Ringed points "
        "joined by the dashed line form the Pareto front: no other variant is both cheaper and "
        "more accurate."))


def _class_names(row: dict, n: int) -> list[str]:
    classes = row.get("classes") or []
    return [str(c) for c in classes] if len(classes) == n else [str(i) for i in range(n)]


def _per_class_section(ctx: Context) -> str | None:
    with_classes = [r for r in ctx.rows if r.get("per_class_accuracy")]
    if not with_classes:
        return None
    # Variants compared on other class sets (another data set) get their own chart.
    groups: dict[str, list[dict]] = {}
    for row in with_classes:
        names = _class_names(row, len(row["per_class_accuracy"]))
        groups.setdefault(canonical(names), []).append(row)
    parts = []
    for same in groups.values():
        names = _class_names(same[0], len(same[0]["per_class_accuracy"]))
        fig = plots.per_class_figure([r["label"] for r in same], names, ctx.colour,
                                     [r["per_class_accuracy"] for r in same])
        parts.append(figure(fig, tight=False, alt="Per-class test accuracy", caption=(
            "Test accuracy per class, mean over completed seeds.")))
    return "".join(parts)


def _confusion_section(ctx: Context) -> str | None:
    figures = []
    for row in ctx.rows:
        matrix = row.get("confusion")
        if not matrix:
            continue
        fig = plots.confusion_figure(row["label"], matrix, _class_names(row, len(matrix)))
        figures.append(figure(fig, tight=False, alt=f"Confusion matrix of {row['label']}"))
    if not figures:
        return None
    return (f'<div class="grid">{"".join(figures)}</div><p class="note">Rows are true classes, '
            "columns predictions; counts summed over seeds, colour is the share of the true "
            "class.</p>")


def value_text(value: Any) -> str:
    """A config or environment value as shown in tables (None as a dash)."""
    return "—" if value is None else canonical(value)


def _config_section(ctx: Context) -> str:
    variants = ctx.variants
    flats = [v.fields for v in variants]
    paths = differing_fields(flats) if len(variants) > 1 else []
    seeds_differ = any(len({canonical(seed_of(r)) for r in v.runs}) > 1 for v in variants)
    html = ""
    if paths or seeds_differ:
        rows = [{"field": Cell(None, p), **{f"v{i}": Cell(None, value_text(v.fields.get(p)))
                                              for i, v in enumerate(variants)}} for p in paths]
        rows.append({"field": Cell(None, SEED_PATH), **{
            f"v{i}": Cell(None, ", ".join(str(seed_of(r)) for r in v.runs))
            for i, v in enumerate(variants)}})
        columns = [("field", "Config field")] + [(f"v{i}", v.label) for i, v in enumerate(variants)]
        html += table(columns, rows)
        html += ('<p class="note">Only the fields that differ between variants are shown; '
                 "seeds list every run of the variant.</p>")
    else:
        html += "<p>All runs share one configuration.</p>"
    shared_flat = {k: v for k, v in flatten(ctx.runs[0].get("config") or {}).items()
                   if k not in paths and k not in (SEED_PATH, "name")}
    if shared_flat:
        items = "".join(f"<dt><code>{escape(k)}</code></dt><dd>{escape(value_text(v))}</dd>"
                        for k, v in shared_flat.items())
        html += (f"<details><summary>Shared settings ({len(shared_flat)} fields)</summary>"
                 f'<dl class="kv">{items}</dl></details>')
    return html


def _environment_section(ctx: Context) -> str:
    runs = ctx.runs
    shared, differ = split_environment([r.get("env") for r in runs])
    if not shared and not differ:
        return '<p class="note">No environment was recorded with these runs.</p>'
    html = ""
    if shared:
        note = "Identical for every run." if differ or len(runs) > 1 else ""
        items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(value_text(v))}</dd>"
                        for k, v in shared.items())
        html += (f'<p class="note">{note}</p>' if note else "") + f'<dl class="kv">{items}</dl>'
    if differ:
        rows = []
        for run in runs:
            env = flatten(run.get("env") or {})
            rows.append({"run": Cell(None, f"{run_name(run)} · {ctx.label(run)}"),
                         **{k: Cell(None, value_text(env.get(k))) for k in differ}})
        html += "<h3>Differs between runs</h3>" + table(
            [("run", "Run")] + [(k, k) for k in differ], rows)
    return html


def _runs_section(ctx: Context) -> str:
    rows = []
    for run in ctx.runs:
        metrics = metrics_of(run)
        rows.append({
            **_run_cells(ctx, run),
            "acc": _number_cell(metrics.get("test_accuracy"), fmt.percent),
            "time": _number_cell(metrics.get("train_time_s"), fmt.duration),
            "started": fmt.timestamp(run.get("started_at")),
        })
    columns = [("id", "Run"), ("name", "Name"), ("label", "Model"), ("seed", "Seed"),
               ("status", "Status"), ("acc", "Test accuracy"), ("time", "Train time"),
               ("started", "Started")]
    return table(columns, rows)
