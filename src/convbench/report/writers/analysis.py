"""The analysis page: for each run, a summary row and every analysis figure recorded in its
artifacts (t-SNE, per-class, rank, weight change), embedded so the file stands alone.

>>> from convbench.store import Store                                      # doctest: +SKIP
>>> write_analysis_report(Store("runs.db"), ["3f9c01ab"], "analysis.html")  # doctest: +SKIP
PosixPath('analysis.html')
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ..columns import Column
from ..html import escape, page, table
from ..writer import WRITERS, ReportError, check_report_path, write_files

DEFAULT_TITLE = "convbench analysis"
COLUMNS = [Column("run", "Run"), Column("kind", "Kind"), Column("model", "Model"),
           Column("test_accuracy", "Top-1", best="max"), Column("test_top5", "Top-5", best="max"),
           Column("test_loss", "Cross-entropy", best="min"),
           Column("macro_f1", "Macro F1", best="max"), Column("train_time_s", "Train time (s)")]


def _figures(run: dict) -> list[tuple[str, Path]]:
    out = []
    for key, value in sorted((run.get("artifacts") or {}).items()):
        if key.endswith("_png") and value and Path(value).is_file():
            out.append((key.removesuffix("_png").replace("_", " "), Path(value)))
    return out


def _img(title: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(title)}">'
            f"<figcaption>{escape(title)} — {escape(path.name)}</figcaption></figure>")


@WRITERS.register("analysis")
def write_analysis_page(runs: list[dict], path: str | Path, *, group: dict | None = None,
                        store: Any = None, title: str | None = None) -> dict[str, Path]:
    """Write the analysis page of ``runs`` (store run dicts) to ``path``; ``{"html": path}``."""
    from ...analysis.plotting import run_label  # the figures' own titles name runs this way

    if not runs:
        raise ReportError("No runs to report: pass run ids (`convbench runs list`).")
    path = check_report_path(path)
    rows = []
    for r in runs:
        m = r.get("metrics") or {}
        rows.append({"run": run_label(r), "kind": r.get("kind"),
                     "model": ((r.get("config") or {}).get("model") or {}).get("name"),
                     **{c.key: m.get(c.key) for c in COLUMNS[3:]}})
    sections = [("Runs", table(COLUMNS, rows))]
    for r in runs:
        body = "".join(_img(t, p) for t, p in _figures(r)) or (
            '<p class="note">No analysis figures yet: run `convbench analyze tsne|per-class|'
            f'rank|weights {escape(r["id"])}`.</p>')
        sections.append((run_label(r), body))
    html = page(title or DEFAULT_TITLE, sections, subtitle=f"{len(runs)} runs")
    return write_files(path, {"html": html})


def write_analysis_report(store: Any, run_ids: list[str], path: str | Path,
                          title: str = DEFAULT_TITLE) -> Path:
    """Write the page for ``run_ids`` (ids or unique prefixes) and return its path."""
    runs = [store.get_run(store.resolve_id(r)) for r in run_ids]
    return write_analysis_page(runs, path, title=title)["html"]
