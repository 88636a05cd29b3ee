"""An analysis page: for each run, a summary row and every analysis figure recorded in its
artifacts (t-SNE, per-class, rank, weight change), embedded so the file stands alone.

>>> write_analysis_report(store, ["3f9c01ab", "77aa01cd"], "analysis.html")  # doctest: +SKIP
PosixPath('analysis.html')
"""

from __future__ import annotations

import base64
from pathlib import Path

from ..errors import ConvbenchError
from ..report.html import escape, page, table
from ..store import Store
from .plotting import run_label
from .runs import get_run

COLUMNS = [("run", "Run"), ("kind", "Kind"), ("model", "Model"), ("test_accuracy", "Top-1"),
           ("test_top5", "Top-5"), ("test_loss", "Cross-entropy"), ("macro_f1", "Macro F1"),
           ("train_time_s", "Train time (s)")]


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


def write_analysis_report(store: Store, run_ids: list[str], path: str | Path,
                          title: str = "convbench analysis") -> Path:
    """Write the page for ``run_ids`` to ``path`` (HTML) and return the path."""
    runs = [get_run(store, r) for r in run_ids]
    if not runs:
        raise ConvbenchError("No runs to report: pass run ids (`convbench runs list`).")
    rows = []
    for r in runs:
        m = r.get("metrics") or {}
        rows.append({"run": run_label(r), "kind": r.get("kind"),
                     "model": ((r.get("config") or {}).get("model") or {}).get("name"),
                     **{k: m.get(k) for k, _ in COLUMNS[3:]}})
    sections = [("Runs", table(COLUMNS, rows, best={"test_accuracy": "max", "test_top5": "max",
                                                    "test_loss": "min", "macro_f1": "max"}))]
    for r in runs:
        figures = _figures(r)
        body = "".join(_img(t, p) for t, p in figures) or (
            '<p class="note">No analysis figures yet: run `convbench analyze tsne|per-class|'
            f'rank|weights {escape(r["id"])}`.</p>')
        sections.append((run_label(r), body))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(title, sections, subtitle=f"{len(runs)} runs"), encoding="utf-8")
    return path
