"""Groups of runs (comparisons, searches)."""

from __future__ import annotations

from datetime import datetime

import pytest

from convbench.store import Store, StoreError


def test_group_round_trip_with_members(store: Store) -> None:
    config = {"strategy": "grid", "space": {"optim.lr": [0.01, 0.1]}}
    group_id = store.create_group(kind="search", name="lr-grid", config=config)
    assert len(group_id) == 8

    group = store.get_group(group_id)
    assert group["id"] == group_id and group["kind"] == "search" and group["name"] == "lr-grid"
    assert group["config"] == config
    assert group["status"] == "running" and group["metrics"] == {} and group["run_ids"] == []
    assert datetime.fromisoformat(group["created_at"]).utcoffset().total_seconds() == 0

    members = [
        store.create_run(name=None, config={}, seed=s, env={}, kind="trial", group_id=group_id)
        for s in range(3)
    ]
    store.create_run(name="outsider", config={}, seed=0, env={})
    assert store.get_group(group_id)["run_ids"] == members  # in the order they started
    assert store.get_run(members[0])["group_id"] == group_id


def test_update_group_merges_metrics(store: Store) -> None:
    group_id = store.create_group(kind="compare", name=None, config={})
    store.update_group(group_id, metrics={"best": {"id": "abc", "acc": 0.9}})
    store.update_group(group_id, metrics={"best": {"acc": 0.95}, "spearman": float("nan")})
    store.update_group(group_id, status="completed")

    group = store.get_group(group_id)
    assert group["metrics"] == {"best": {"id": "abc", "acc": 0.95}, "spearman": None}
    assert group["status"] == "completed"
    with pytest.raises(StoreError, match="Unknown group status 'diverged'"):
        store.update_group(group_id, status="diverged")


def test_list_groups_by_kind_newest_first(store: Store) -> None:
    first = store.create_group(kind="compare", name="a", config={})
    second = store.create_group(kind="search", name="b", config={})
    third = store.create_group(kind="compare", name="c", config={})
    run_id = store.create_run(name=None, config={}, seed=0, env={}, group_id=third)

    assert [g["id"] for g in store.list_groups()] == [third, second, first]
    listed = store.list_groups(kind="compare")
    assert [g["id"] for g in listed] == [third, first]
    assert [g["run_ids"] for g in listed] == [[run_id], []]
    assert store.list_groups(kind="nothing") == []


def test_unknown_group_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="No group .* 'cafe0000'"):
        store.get_group("cafe0000")
    with pytest.raises(StoreError, match="No group"):
        store.update_group("cafe0000", status="completed")
    with pytest.raises(StoreError, match="No group"):
        store.create_run(name=None, config={}, seed=0, env={}, group_id="cafe0000")
    assert store.list_runs() == []
