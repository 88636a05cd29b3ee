"""What a search (or a comparison queued for workers) is doing now: trials per state and
phase, and its workers (host, pid, last heartbeat, current trial), read from the store while
workers run (``convbench search --status ID``, ``convbench runs groups``).

>>> status = search_status(Store("postgresql://me@db/runs"), "3f9c01ab")   # doctest: +SKIP
>>> status["totals"]                                                       # doctest: +SKIP
{'waiting': 4, 'running': 2, 'done': 6, 're-queued': 1, 'failed': 0}
"""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState

from ..errors import StoreError
from ..store import Store
from .storage import PHASES, QUEUE_PHASE, get_study, open_storage, orphaned, trials

STATES = ("waiting", "running", "done", "re-queued", "failed")


def _state(t: Any) -> str:
    if orphaned(t):
        return "re-queued"
    return {TrialState.WAITING: "waiting", TrialState.RUNNING: "running",
            TrialState.FAIL: "failed"}.get(t.state, "done")


def search_status(store: Store, gid: str) -> dict[str, Any]:
    """Counts of trials per phase and state (``waiting``, ``running``, ``done`` = completed
    or pruned, ``re-queued`` = attempts a dead or stopped worker left, put back in the queue,
    ``failed``), ``totals``, and ``workers``: the last report of each worker that took part
    (``state`` running/idle/stopped, ``trial``, ``heartbeat`` in UTC), newest first."""
    group = store.get_group(gid)
    queued = "queue" in (group.get("metrics") or {})  # a comparison queued for workers
    if group["kind"] != "search" and not queued:
        raise StoreError(f"Group {gid} is a {group['kind']}, not a search: "
                         "`convbench search --list` shows searches.")
    storage = open_storage(store, create=False)
    phases: dict[str, dict[str, int]] = {}
    for phase in PHASES if group["kind"] == "search" else (QUEUE_PHASE,):
        counts = dict.fromkeys(STATES, 0)
        for t in trials(get_study(storage, gid, phase)):
            counts[_state(t)] += 1
        if any(counts.values()):
            phases[phase] = counts
    totals = {s: sum(c[s] for c in phases.values()) for s in STATES}
    workers = sorted(((group.get("metrics") or {}).get("workers") or {}).values(),
                     key=lambda w: w.get("heartbeat") or "", reverse=True)
    return {"id": gid, "kind": group["kind"], "name": group.get("name"),
            "status": group["status"],
            "phases": phases, "totals": totals, "workers": workers}
