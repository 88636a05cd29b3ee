"""The Runs page's listing: the short form of every run held in memory, kept current from
the store, filtered, sorted and paged per request.

A store of 10,000 runs is a few megabytes of short rows; reading them from JSON configs
takes a few hundred milliseconds once, filtering and sorting them in memory a few. So the
index reads everything once, then — on each poll of the live view — only runs started since
its newest, the ones it last saw running, and those the store now says are running;
a store whose run count no longer matches (a run deleted elsewhere) is read again whole,
and so is any store after :data:`FULL_EVERY_S` (a safety net for edits nothing announces).

>>> flt = RunFilter(text="b2fl8")
>>> flt.matches({"id": "ab", "name": None, "model": "B2FL8", "model_name": "blocks",
...              "dataset": "digits", "kind": "train", "status": "completed"})
True
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from ..store import Store

MAX_PAGE = 500  # a listing is for reading, not for exporting the store
FULL_EVERY_S = 60.0
SORT_KEYS = ("started_at", "ended_at", "id", "name", "kind", "status", "seed", "group_id",
             "dataset", "model", "epochs_done", "test_accuracy", "best_val_accuracy",
             "train_time_s", "params_total", "flops", "energy_j")
FACETS = ("kind", "status", "dataset", "model")
# The `blocks` shorthand a user may type in a search: B2FL32, any case.
SHORTHAND = re.compile(r"b\d+fl\d+")


@dataclass(frozen=True)
class RunFilter:
    """What a listing keeps: exact kind/status/data set/model/group, and ``text`` found
    (case-insensitively) in the id, name, model or data set."""

    kind: str | None = None
    status: str | None = None
    dataset: str | None = None
    model: str | None = None
    group_id: str | None = None
    text: str | None = None

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether the short run ``row`` passes."""
        for key in ("kind", "status", "dataset", "model", "group_id"):
            wanted = getattr(self, key)
            if wanted and row.get(key) != wanted:
                return False
        needle = (self.text or "").strip().lower()
        if not needle:
            return True
        fields = (row["id"], row.get("name"), row.get("model_name"), row.get("dataset"))
        if any(needle in str(f).lower() for f in fields if f):
            return True
        return bool(SHORTHAND.fullmatch(needle)) and str(row.get("model")).lower() == needle


def _sort_key(key: str, descending: bool):
    def order(row: dict[str, Any]) -> tuple:
        value = row.get(key)
        missing = value is None
        if isinstance(value, str):
            value = value.lower() if key in ("name", "model", "dataset") else value
        # Missing values last in either direction.
        return (missing != descending, "" if missing else value, row["id"])
    return order


class RunIndex:
    """Short rows of every run of ``store``, refreshed by :meth:`refresh`; thread-safe."""

    def __init__(self, store: Store):
        self.store = store
        self._rows: dict[str, dict[str, Any]] = {}
        self._newest = ""
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def refresh(self, activity: dict[str, Any] | None = None) -> None:
        """Bring the index up to date with the store (``activity``: a fresh
        :meth:`Store.activity`, when the caller has one)."""
        activity = activity or self.store.activity()
        total = sum(n for n, _, _ in activity["statuses"].values())
        with self._lock:
            if not self._loaded_at or time.monotonic() - self._loaded_at > FULL_EVERY_S:
                self._load(self.store.run_summaries())
                return
            fresh = self.store.run_summaries(started_after=self._newest) if self._newest \
                else self.store.run_summaries()
            watch = {rid for rid, r in self._rows.items() if r["status"] == "running"}
            watch |= set(activity["running"]) - {r["id"] for r in fresh}
            watch -= {r["id"] for r in fresh}
            changed = self.store.run_summaries(ids=sorted(watch)) if watch else []
            for row in fresh + changed:
                self._put(row)
            for rid in watch - {r["id"] for r in changed}:
                self._rows.pop(rid, None)  # deleted
            for rid, epochs in activity["running"].items():
                if rid in self._rows:
                    self._rows[rid]["epochs_done"] = epochs
            if len(self._rows) != total:
                self._load(self.store.run_summaries())

    def page(self, flt: RunFilter, *, sort: str = "started_at", descending: bool = True,
             offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """``{"total": matching runs, "runs": [short rows of the page]}``."""
        if sort not in SORT_KEYS:
            raise StoreError(f"Cannot sort runs by {sort!r}; use one of {', '.join(SORT_KEYS)}.")
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise StoreError(f"A page holds 1 to {MAX_PAGE} runs from offset 0 up; got "
                             f"limit={limit}, offset={offset}.")
        self.refresh()  # as of this request: a run recorded a moment ago is listed
        with self._lock:
            found = [r for r in self._rows.values() if flt.matches(r)]
        found.sort(key=_sort_key(sort, descending), reverse=descending)
        return {"total": len(found), "runs": [dict(r) for r in found[offset:offset + limit]]}

    def facets(self) -> dict[str, list[str]]:
        """The values each fixed filter can take."""
        self.refresh()
        with self._lock:
            rows = list(self._rows.values())
        return {k: sorted({str(r[k]) for r in rows if r.get(k) is not None}) for k in FACETS}

    def forget(self, run_id: str) -> None:
        """Drop a run this server deleted (without waiting for the next poll)."""
        with self._lock:
            self._rows.pop(run_id, None)

    def _load(self, rows: list[dict[str, Any]]) -> None:
        self._rows = {}
        self._newest = ""
        for row in rows:
            self._put(row)
        self._loaded_at = time.monotonic()

    def _put(self, row: dict[str, Any]) -> None:
        self._rows[row["id"]] = row
        self._newest = max(self._newest, row["started_at"] or "")
