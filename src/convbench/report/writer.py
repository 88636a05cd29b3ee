"""What every report writer shares: the registry of writers by kind, the output path check
and the atomic writing of the page and its exports.

A writer turns stored runs (and their group) into an HTML page plus exports beside it; it is
registered in :data:`WRITERS` under the kind of what it reports (``compare``,
``detect-compare``, ``search``, ``analysis``); :func:`convbench.report.write` looks it up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..atomic import write_text
from ..errors import ConvbenchError
from ..registry import Registry

EXPORTS = (".md", ".csv", ".json")

# writer(runs, path, *, group, store, title) → the paths written, by kind ("html", "md", …)
Writer = Callable[..., dict[str, Path]]
WRITERS: Registry[Writer] = Registry("report kind")


class ReportError(ConvbenchError):
    """A report that cannot be written (no runs, or an output path that would clash)."""


def check_report_path(path: str | Path) -> Path:
    """``path`` as a Path, refused when it is a folder or names an export (.md/.csv/.json).

    >>> check_report_path("report.md")
    Traceback (most recent call last):
    ...
    convbench.report.writer.ReportError: Report path 'report.md' ends in .md, which the md ...
    """
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


def write_files(path: Path, texts: dict[str, str]) -> dict[str, Path]:
    """Write ``texts`` by kind, atomically: ``html`` to ``path``, every other kind beside it
    with that suffix (``md`` → ``report.md``). Returns the paths by kind."""
    return {kind: write_text(path if kind == "html" else path.with_suffix(f".{kind}"), text)
            for kind, text in texts.items()}
