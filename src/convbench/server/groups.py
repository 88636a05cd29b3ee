"""Comparisons, searches and LR range tests (the store's groups): a listing, and each
group's page — the very report ``convbench report GROUP`` writes (a search: its trials kept,
discarded and why, pruned and failed, early against final accuracy with the rank
correlations, parameter importance, the range-test curves; a comparison: its summary), by
the report writer of its kind. A page is written again only when its group changed.

>>> GroupPages(None).key({"id": "g", "status": "running", "run_ids": ["a"]}, {"a": "running"})
('g', 'running', (('a', 'running'),))
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import ConvbenchError, StoreError
from ..store import Store


def group_rows(store: Store) -> list[dict[str, Any]]:
    """Every group, newest first, with its size (the Groups page)."""
    return [{"id": g["id"], "kind": g["kind"], "name": g.get("name"), "status": g["status"],
             "created_at": g["created_at"], "runs": len(g["run_ids"])}
            for g in store.list_groups()]


class GroupPages:
    """The report page of each group, cached until the group or its runs change."""

    def __init__(self, store: Store | None):
        self.store = store
        self._folder = Path(tempfile.mkdtemp(prefix="convbench-groups-"))
        self._pages: dict[str, tuple[tuple, str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(group: dict, statuses: dict[str, str]) -> tuple:
        """What decides whether a written page is still current."""
        return (group["id"], group["status"],
                tuple((rid, statuses.get(rid)) for rid in group["run_ids"]))

    def html(self, group_id: str) -> str:
        """The group's report page (HTML, self-contained)."""
        from ..report import report

        group = self.store.get_group(group_id)
        rows = self.store.run_summaries(ids=group["run_ids"]) if group["run_ids"] else []
        key = self.key(group, {r["id"]: f"{r['status']}:{r['epochs_done']}" for r in rows})
        with self._lock:  # one report at a time: they share matplotlib's state
            cached = self._pages.get(group_id)
            if cached and cached[0] == key:
                return cached[1]
            path = self._folder / group_id / "report.html"
            try:
                report([group_id], path, store=self.store)
                text = path.read_text(encoding="utf-8")
            except ConvbenchError as err:  # a search's report needs its summary: at the end
                text = progress_page(group, rows, str(err))
            self._pages[group_id] = (key, text)
            return text


def progress_page(group: dict, rows: list[dict[str, Any]], why: str) -> str:
    """A group without its report yet (a search still running): its runs so far, as a
    table of the report's own page blocks."""
    from ..report import fmt
    from ..report.html import Cell, page, table

    done = sum(r["status"] == "completed" for r in rows)
    cells = [{"id": r["id"], "name": r.get("name") or "", "kind": r["kind"],
              "status": r["status"], "epochs": r["epochs_done"],
              "best": Cell(fmt.number(r.get("best_val_accuracy")),
                           fmt.percent(r.get("best_val_accuracy"))),
              "test": Cell(fmt.number(r.get("test_accuracy")),
                           fmt.percent(r.get("test_accuracy")))} for r in rows]
    columns = [("id", "Run"), ("name", "Name"), ("kind", "Kind"), ("status", "Status"),
               ("epochs", "Epochs"), ("best", "Best val. accuracy"), ("test", "Test accuracy")]
    note = (f'<p class="note">{len(rows)} runs so far, {done} completed. The full report '
            f"appears here when the {group['kind']} ends ({why})</p>")
    title = f"{group['kind']} {group.get('name') or group['id']} — {group['status']}"
    return page(title, [("Runs so far", note + table(columns, cells, {"best": "max",
                                                                     "test": "max"}))])


def trials(store: Store, group_id: str) -> dict[str, Any]:
    """A search's trials for parallel coordinates: its parameters (choices or ranges, from
    its spec) and one line per configuration. A finished search has them in its summary:
    each configuration's point, status (kept, discarded, pruned, failed) and score — the
    final validation accuracy, else the early (screening) one. While it runs, each trained
    run so far, with the values its config holds at each parameter's first path and its
    best validation accuracy."""
    from ..report.configdiff import flatten
    from ..search.space import params_of, parse

    group = store.get_group(group_id)
    if group["kind"] != "search":
        raise StoreError(f"Group {group['id']} is a {group['kind']}, not a search.")
    params = params_of(parse(group["config"]["spec"], source=f"search {group['id']}"))
    rows = ((group.get("metrics") or {}).get("summary") or {}).get("rows")
    out = []
    if rows:
        for row in rows:
            score = row.get("final") if row.get("final") is not None else row.get("early")
            out.append({"id": row.get("label"), "status": row.get("status"), "score": score,
                        "values": row.get("point") or {}})
    else:
        for run_id in group["run_ids"]:
            run = store.get_run(run_id)
            if run["kind"] != "train":
                continue  # the screening's LR range tests: their LR is the sweep's
            flat = flatten(run.get("config"))
            out.append({"id": run["id"], "status": run["status"],
                        "score": (run.get("metrics") or {}).get("best_val_accuracy"),
                        "values": {p.name: flat.get(p.paths[0]) for p in params}})
    return {"params": [{"name": p.name, "choices": p.choices, "low": p.low, "high": p.high,
                        "log": p.log} for p in params], "trials": out}
