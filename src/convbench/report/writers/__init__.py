"""One report writer per kind, registered in :data:`convbench.report.writer.WRITERS`, and the
look-up by kind: a search group makes a search report, detection runs a detection
comparison, other runs (training, SVM) a classification comparison.

>>> sorted(report_kinds())
['analysis', 'compare', 'detect-compare', 'search']
>>> report_kind([{"kind": "detect"}, {"kind": "detect"}], None)
'detect-compare'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..writer import WRITERS, ReportError
from . import analysis, classification, detection, search

__all__ = ["analysis", "classification", "detection", "report", "report_kind", "report_kinds",
           "search", "write"]


def report_kinds() -> list[str]:
    """The registered report kinds."""
    return WRITERS.names()


def report_kind(runs: list[dict], group: dict | None) -> str:
    """The kind of report these runs (and the group named) make.

    A search group makes a search report; detection runs a detection comparison; any other
    runs (training, SVM) a classification comparison. Detection and classification runs
    measure different things and are refused together.
    """
    if group is not None and group.get("kind") == "search":
        inside = set(group.get("run_ids") or [])
        if any(r.get("id") not in inside for r in runs):
            raise ReportError("A search report covers one search: give the search's id alone.")
        return "search"
    detectors = [r for r in runs if r.get("kind") == "detect"]
    if detectors and len(detectors) < len(runs):
        raise ReportError(
            "Detection runs (AP) and classification runs (accuracy) measure different things: "
            "give the ids of one kind per report."
        )
    return "detect-compare" if detectors else "compare"


def write(runs: list[dict], path: str | Path, *, group: dict | None = None,
          store: Any = None, title: str | None = None, kind: str | None = None
          ) -> dict[str, Path]:
    """Write the report of ``runs`` (and ``group``) with the writer of their kind (or
    ``kind``); each writer has its own default title. ``store`` is read by writers that need
    more than the runs (a search reads its screening runs).

    >>> from convbench.store import Store                                   # doctest: +SKIP
    >>> from convbench.results import collect_runs                          # doctest: +SKIP
    >>> runs, group = collect_runs(store := Store("runs.db"), ["5c1e0a77"])  # doctest: +SKIP
    >>> sorted(write(runs, "out/r.html", group=group, store=store))          # doctest: +SKIP
    ['csv', 'html', 'json', 'md']
    """
    chosen = WRITERS.get(kind or report_kind(runs, group))
    return chosen(runs, path, group=group, store=store, title=title)


def report(ids: list[str] | str, path: str | Path, *, store: Any = None,
           title: str | None = None) -> dict[str, Path]:
    """``convbench report IDS -o PATH`` in Python: the report of stored runs and/or groups
    (comparison, search) named by id or id prefix, by the writer of their kind.

    >>> paths = report(["5c1e0a77"], "out/again.html", store="runs.db")  # doctest: +SKIP
    >>> sorted(paths)                                                    # doctest: +SKIP
    ['csv', 'html', 'json', 'md']
    """
    from ...results import collect_runs
    from ...store import Store

    store = store if isinstance(store, Store) else Store(store)
    runs, group = collect_runs(store, [ids] if isinstance(ids, str) else list(ids))
    return write(runs, path, group=group, store=store, title=title)
