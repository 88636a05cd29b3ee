"""Write the comparison report: HTML page plus Markdown, CSV and JSON beside it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ..atomic import write_text
from ..errors import ConvbenchError
from .exports import report_csv, report_json, report_markdown
from .html import page
from .sections import Context, html_sections

EXPORTS = (".md", ".csv", ".json")


class ReportError(ConvbenchError):
    """A report that cannot be written (no runs, or an output path that would clash)."""


def check_report_path(path: str | Path) -> Path:
    """``path`` as a Path, refused when it is a folder or names an export (.md/.csv/.json)."""
    path = Path(path)
    if path.suffix.lower() in EXPORTS:
        raise ReportError(
            f"Report path {str(path)!r} ends in {path.suffix}, which the {path.suffix[1:]} export "
            "beside it would overwrite. Give the HTML file name, e.g. report.html."
        )
    if path.is_dir():
        raise ReportError(f"Report path {str(path)!r} is a folder. Give a file name, e.g. "
                          f"{path / 'report.html'}.")
    blocker = next((p for p in path.parents if p.is_file()), None)
    if blocker is not None:
        raise ReportError(f"Report path {str(path)!r}: {str(blocker)!r} is a file, not a "
                          "folder. Give another path.")
    try:  # the folder is made now, so a bad path fails before the work, not after it
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f"Cannot make the folder for report {str(path)!r}: "
                          f"{err.strerror or err}. Give another path.") from None
    return path


def write_report(
    runs: list[dict],
    path: str | Path,
    *,
    title: str = "convbench comparison",
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
    out = {"html": path, "md": path.with_suffix(".md"), "csv": path.with_suffix(".csv"),
           "json": path.with_suffix(".json")}
    write_text(out["html"], page(title, html_sections(ctx), subtitle=ctx.subtitle))
    write_text(out["md"], report_markdown(ctx, title))
    write_text(out["csv"], report_csv(ctx))
    write_text(out["json"], report_json(ctx, title, group, when))
    return out
