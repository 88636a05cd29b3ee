"""What every entry point returns: a stored :class:`Run`, or a :class:`Group` of runs.

Both are the store's own dicts (so ``json.dumps`` and ``dict`` code keep working) with
attribute access to the keys people use most.

>>> run = Run({"id": "ab12", "name": "x", "status": "completed", "metrics": {"a": 1}})
>>> run.id, run.status, run.metrics["a"], run.epochs
('ab12', 'completed', 1, [])
>>> group = Group({"id": "g1", "kind": "compare", "status": "completed",
...                "runs": [{"id": "ab12", "status": "completed"}]})
>>> group.kind, [r.id for r in group.runs]
('compare', ['ab12'])
"""

from __future__ import annotations

from typing import Any


class Run(dict):
    """A stored run (the dict of ``Store.get_run``) with attribute access to common keys."""

    id = property(lambda self: self["id"])
    name = property(lambda self: self.get("name"))
    kind = property(lambda self: self.get("kind"))
    status = property(lambda self: self["status"])
    metrics = property(lambda self: self.get("metrics") or {})
    epochs = property(lambda self: self.get("epochs") or [])


class Group(dict):
    """A stored group (a comparison or a search: ``Store.get_group``) with its runs."""

    id = property(lambda self: self["id"])
    name = property(lambda self: self.get("name"))
    kind = property(lambda self: self.get("kind"))
    status = property(lambda self: self.get("status"))
    metrics = property(lambda self: self.get("metrics") or {})

    @property
    def runs(self) -> list[Run]:
        return [r if isinstance(r, Run) else Run(r) for r in self.get("runs") or []]


def load_group(store: Any, group_id: str) -> Group:
    """The group ``group_id`` of ``store`` with its runs (``runs``) read from the store."""
    group = Group(store.get_group(group_id))
    group["runs"] = [Run(store.get_run(rid)) for rid in group["run_ids"]]
    return group
