"""Markdown, CSV and JSON versions of the comparison table.

CSV and JSON carry raw numbers in SI units (seconds, bytes, joules, fractions) for further
analysis; Markdown carries the same human-friendly text as the HTML table.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from .columns import COLUMNS, Column, cell
from .configdiff import canonical, flatten, split_environment
from .html import best_values, cell_number, cell_text
from .sections import Context, run_name, value_text
from .summary import metrics_of, seed_of, status_of


def _stat(row: dict, key: str, stat: str) -> Any:
    return ((row.get("metrics") or {}).get(key) or {}).get(stat)


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, list | dict):
        return canonical(value)
    return value


def csv_text(rows: list[dict], columns: list[Column]) -> str:
    """One header line and one line per variant: mean, std and median of every column.

    Differing config fields follow as ``config.<dotted path>`` columns.

    >>> print(csv_text([{"label": "a", "n": 1, "metrics": {}}], []).splitlines()[0])
    label,model,status,runs,completed,seeds,run_ids,energy_estimated
    """
    config_paths: list[str] = []
    for row in rows:
        for path in row.get("config") or {}:
            if path not in config_paths:
                config_paths.append(path)
    header = ["label", "model", "status", "runs", "completed", "seeds", "run_ids",
              "energy_estimated"]
    for column in columns:
        header += [column.key, f"{column.key}_std", f"{column.key}_median"]
    header += [f"config.{p}" for p in config_paths]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        line = [row.get("label"), row.get("model"), row.get("status"), row.get("runs"),
                row.get("n"), " ".join(str(s) for s in row.get("seeds") or []),
                " ".join(str(i) for i in row.get("run_ids") or []),
                row.get("energy_estimated")]
        for column in columns:
            line += [_stat(row, column.key, s) for s in ("mean", "std", "median")]
        line += [(row.get("config") or {}).get(p) for p in config_paths]
        writer.writerow([_csv_value(v) for v in line])
    return out.getvalue()


def _md(text: Any) -> str:
    # A pipe would end the cell; newlines would end the row.
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], lines: list[list[str]], right_from: int = 1) -> str:
    """A GitHub-flavoured Markdown table; columns from ``right_from`` on are right-aligned.

    >>> print(markdown_table(["Model", "Acc"], [["a", "90 %"]]))
    | Model | Acc |
    | :-- | --: |
    | a | 90 % |
    """
    align = [":--" if i < right_from else "--:" for i in range(len(header))]
    out = ["| " + " | ".join(_md(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(_md(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def table_markdown(columns: list[tuple[str, str]], rows: list[dict],
                   best: dict[str, str] | None = None) -> str:
    """What :func:`~convbench.report.html.table` shows, as Markdown, best cells in bold.

    >>> print(table_markdown([("m", "Model"), ("t", "Time")], [{"m": "a", "t": 3},
    ...                      {"m": "b", "t": 5}], best={"t": "min"}))
    | Model | Time |
    | :-- | --: |
    | a | **3** |
    | b | 5 |
    """
    targets = best_values(columns, rows, best or {})
    lines = []
    for row in rows:
        line = []
        for key, _ in columns:
            text = cell_text(row.get(key))
            is_best = key in targets and cell_number(row.get(key)) == targets[key]
            line.append(f"**{text}**" if is_best else text)
        lines.append(line)
    return markdown_table([label for _, label in columns], lines)


def summary_markdown(rows: list[dict], columns: list[Column]) -> str:
    """The comparison table in Markdown, best value per column in bold."""
    cell_rows = [{c.key: cell(row, c) for c in columns} for row in rows]
    targets = best_values([(c.key, c.label) for c in columns], cell_rows,
                          {c.key: c.best for c in columns if c.best})
    lines = []
    for row, cells in zip(rows, cell_rows, strict=True):
        runs = str(row.get("n", 0)) if row.get("n") == row.get("runs") else (
            f"{row.get('n', 0)} of {row.get('runs')} ({row.get('status')})")
        line = [str(row.get("label")), runs]
        for column in columns:
            c = cells[column.key]
            text = c.text + (f" ({c.sub})" if c.sub else "")
            is_best = column.key in targets and c.value == targets[column.key]
            line.append(f"**{text}**" if is_best else text)
        lines.append(line)
    return markdown_table(["Model", "Runs"] + [c.label for c in columns], lines)


def clean_json(value: Any) -> Any:
    """``value`` with NaN/inf replaced by None, so the JSON is valid everywhere.

    >>> clean_json({"a": [1.0, float("nan")]})
    {'a': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def report_markdown(ctx: Context, title: str) -> str:
    """The Markdown twin of the page: summary table, incomplete runs, config differences."""
    md = [f"# {title}", "", ctx.subtitle, "", summary_markdown(ctx.rows, ctx.columns)]
    if ctx.incomplete:
        md += ["", "## Runs not completed", "", markdown_table(
            ["Run", "Name", "Model", "Seed", "Status", "Error"],
            [[str(r.get("id")), run_name(r), ctx.label(r), str(seed_of(r)), status_of(r),
              str(metrics_of(r).get("error") or "")] for r in ctx.incomplete],
            right_from=6)]
    paths = list(ctx.rows[0].get("config") or {}) if ctx.rows else []
    if paths:
        md += ["", "## Configuration differences", "", markdown_table(
            ["Model", *paths],
            [[r["label"]] + [value_text(r["config"].get(p)) for p in paths] for r in ctx.rows],
            right_from=len(paths) + 1)]
    return "\n".join(md) + "\n"


def report_json(ctx: Context, title: str, group: dict | None, when: str) -> str:
    """Everything in the report as strict JSON (no NaN): rows with full aggregates, runs,
    environment."""
    shared, differ = split_environment([r.get("env") for r in ctx.runs])
    data = {
        "title": title,
        "subtitle": ctx.subtitle,
        "generated_at": when,
        "group": group,
        "columns": [{"key": c.key, "label": c.label, "best": c.best} for c in ctx.columns],
        "rows": ctx.rows,
        "runs": [{"id": r.get("id"), "name": r.get("name"), "label": ctx.label(r),
                  "seed": seed_of(r), "status": status_of(r), "started_at": r.get("started_at"),
                  "ended_at": r.get("ended_at")} for r in ctx.runs],
        "environment": {"shared": shared, "differing": {
            str(r.get("id")): {k: flatten(r.get("env") or {}).get(k) for k in differ}
            for r in ctx.runs} if differ else {}},
    }
    return json.dumps(clean_json(data), indent=2, default=str, allow_nan=False) + "\n"


def report_csv(ctx: Context) -> str:
    """The CSV table with every column (a stable header for scripts)."""
    return csv_text(ctx.rows, COLUMNS)
