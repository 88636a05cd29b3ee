"""The classification comparison report: one row per model/config variant, seeds aggregated.

The page (:mod:`convbench.report.sections`) and its Markdown, CSV and JSON twins, written from
stored run dicts only, so any comparison can be re-made later, on another machine.

>>> from convbench.store import Store                            # doctest: +SKIP
>>> store = Store("runs.db")                                     # doctest: +SKIP
>>> runs = [store.get_run(i) for i in ("3f9c01ab", "0b1e7d22")]  # doctest: +SKIP
>>> sorted(write_report(runs, "out/report.html"))                # doctest: +SKIP
['csv', 'html', 'json', 'md']
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..columns import COLUMNS, Column, cell
from ..configdiff import flatten, split_environment
from ..exports import csv_table, json_text, markdown_table
from ..html import best_values, page
from ..sections import Context, html_sections, run_name, value_text
from ..summary import metrics_of, seed_of, status_of
from ..writer import WRITERS, ReportError, check_report_path, write_files

DEFAULT_TITLE = "convbench comparison"


def write_report(
    runs: list[dict],
    path: str | Path,
    *,
    title: str = DEFAULT_TITLE,
    group: dict | None = None,
) -> dict[str, Path]:
    """Write the comparison report of ``runs`` (store run dicts, with ``epochs``).

    Writes ``path`` (self-contained HTML) and, beside it, the same table as ``.md``, ``.csv``
    and ``.json``. Missing metrics show as dashes; failed or diverged runs are listed with
    their status. ``group`` (a store group dict) names the comparison in the subtitle.

    >>> from convbench.store import Store                            # doctest: +SKIP
    >>> store = Store("runs.db")                                     # doctest: +SKIP
    >>> runs = [store.get_run(i) for i in (1, 2, 3)]                 # doctest: +SKIP
    >>> write_report(runs, "out/report.html")["csv"]                 # doctest: +SKIP
    PosixPath('out/report.csv')
    """
    path = check_report_path(path)
    runs = [r for r in runs if r is not None]
    if not runs:
        raise ReportError("No runs to report. Pass the ids of stored runs "
                          "(`convbench runs list` shows them).")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    ctx = Context.build(runs, group, when)
    return write_files(path, {
        "html": page(title, html_sections(ctx), subtitle=ctx.subtitle),
        "md": report_markdown(ctx, title),
        "csv": report_csv(ctx),
        "json": report_json(ctx, title, group, when),
    })


@WRITERS.register("compare")
def _write(runs: list[dict], path: str | Path, *, group: dict | None = None, store: Any = None,
           title: str | None = None) -> dict[str, Path]:
    return write_report(runs, path, title=title or DEFAULT_TITLE, group=group)


def _stat(row: dict, key: str, stat: str) -> Any:
    return ((row.get("metrics") or {}).get(key) or {}).get(stat)


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
    lines = []
    for row in rows:
        line = [row.get("label"), row.get("model"), row.get("status"), row.get("runs"),
                row.get("n"), " ".join(str(s) for s in row.get("seeds") or []),
                " ".join(str(i) for i in row.get("run_ids") or []),
                row.get("energy_estimated")]
        for column in columns:
            line += [_stat(row, column.key, s) for s in ("mean", "std", "median")]
        line += [(row.get("config") or {}).get(p) for p in config_paths]
        lines.append(line)
    return csv_table(header, lines)


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
    return json_text(data)


def report_csv(ctx: Context) -> str:
    """The CSV table with every column (a stable header for scripts)."""
    return csv_text(ctx.rows, COLUMNS)
