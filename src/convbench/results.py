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

from .errors import StoreError


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


def in_planned_order(group: Group) -> Group:
    """``group`` with its runs in the order the comparison planned them (variant by variant,
    seed by seed), whatever order parallel workers created them in; the first is the base
    case of a detection report. Groups without a plan keep the store's order.

    >>> g = in_planned_order(Group({"config": {"run_names": ["a", "b"]},
    ...                             "runs": [{"id": 2, "name": "b"}, {"id": 1, "name": "a"}]}))
    >>> [r["id"] for r in g.runs], g["run_ids"]
    ([1, 2], [1, 2])
    """
    planned = (group.get("config") or {}).get("run_names") or []
    position = {name: i for i, name in enumerate(planned)}
    runs = sorted(group.get("runs") or [], key=lambda r: position.get(r.get("name"),
                                                                      len(planned)))
    group["runs"] = runs
    group["run_ids"] = [r["id"] for r in runs]
    return group


def collect_runs(store: Any, ids: list[str]) -> tuple[list[dict], dict | None]:
    """Runs named by run ids and/or group ids (a comparison, a search), in the order given;
    the last group named comes second."""
    runs: list[dict] = []
    group = None
    for ident in dict.fromkeys(ids):  # an id given twice is one run, not two
        try:
            runs.append(store.get_run(store.resolve_id(ident)))
            continue
        except StoreError as err:
            run_error = err
        groups = [g for g in store.list_groups() if g["id"].startswith(ident)]
        if len(groups) != 1:
            raise run_error
        group = in_planned_order(load_group(store, groups[0]["id"]))
        runs.extend(group.runs)
    # A run named on its own and inside a named comparison also counts once: a repeat would
    # weigh its model's mean and std as an extra seed.
    unique = {r["id"]: r for r in runs}
    return list(unique.values()), group
