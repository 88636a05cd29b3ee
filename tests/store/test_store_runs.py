"""Runs and epochs: what is written reads back, on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
import sqlalchemy as sa

from convbench.store import Store, StoreError
from convbench.store.schema import epochs


def _run(store: Store, **overrides) -> str:
    fields = {"name": "b2fl32", "config": {"model": {"name": "blocks"}}, "seed": 0, "env": {}}
    return store.create_run(**{**fields, **overrides})


def _epoch_rows(store: Store, run_id: str) -> int:
    with store.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(epochs).where(epochs.c.run_id == run_id)
        return conn.scalar(query)


def test_create_and_get_round_trip(store: Store) -> None:
    config = {
        "optim": {"lr": 0.1 + 0.2, "betas": [0.9, 0.999], "eps": 1e-300},
        "data": {"name": "digits", "limit": None, "flip": True},
        "tags": ["a", "ü"],
    }
    env = {"python": "3.11", "torch": "2.4.0", "threads": 2}
    run_id = store.create_run(
        name="first", config=config, seed=7, env=env, kind="lr_find", device="cpu"
    )
    assert len(run_id) == 8 and int(run_id, 16) >= 0

    run = store.get_run(run_id)
    assert run["id"] == run_id
    assert run["name"] == "first" and run["kind"] == "lr_find" and run["device"] == "cpu"
    assert run["status"] == "running" and run["ended_at"] is None and run["group_id"] is None
    assert run["seed"] == 7
    assert run["config"] == config  # exact float equality: 0.30000000000000004 survives
    assert run["config"]["optim"]["lr"] == 0.1 + 0.2
    assert run["env"] == env
    assert run["metrics"] == {} and run["artifacts"] == {} and run["epochs"] == []
    started = datetime.fromisoformat(run["started_at"])
    assert started.tzinfo is not None and started.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60


def test_epochs_are_ordered_and_upserted(store: Store) -> None:
    run_id = _run(store)
    for epoch in (3, 1, 2):
        store.add_epoch(run_id, epoch, {"val_acc": epoch / 10, "lr": 1e-3})
    store.add_epoch(run_id, 2, {"val_acc": 0.25})  # a resumed run rewrites epoch 2

    got = store.get_run(run_id)["epochs"]
    assert got == [
        {"epoch": 1, "val_acc": 0.1, "lr": 1e-3},
        {"epoch": 2, "val_acc": 0.25},
        {"epoch": 3, "val_acc": 0.3, "lr": 1e-3},
    ]
    assert _epoch_rows(store, run_id) == 3
    # listings count them without loading them (a running run has no final metrics yet)
    assert [r["epochs_done"] for r in store.list_runs()] == [3]


def test_truncate_epochs_keeps_only_up_to_after(store: Store) -> None:
    run_id, other = _run(store), _run(store)
    for epoch in range(1, 6):
        store.add_epoch(run_id, epoch, {"loss": 1.0 / epoch})
        store.add_epoch(other, epoch, {"loss": 2.0})
    store.truncate_epochs(run_id, after=2)
    assert [e["epoch"] for e in store.get_run(run_id)["epochs"]] == [1, 2]
    assert len(store.get_run(other)["epochs"]) == 5


def test_non_finite_numbers_are_stored_as_none(store: Store) -> None:
    run_id = _run(store, config={"clip": float("inf")})
    store.add_epoch(
        run_id, 1, {"loss": float("nan"), "grad": float("-inf"), "acc": 0.1, "ok": True}
    )
    store.update(run_id, metrics={"test": {"loss": math.inf, "acc": 0.5}}, status="diverged")

    run = store.get_run(run_id)
    assert run["config"] == {"clip": None}
    assert run["epochs"] == [{"epoch": 1, "loss": None, "grad": None, "acc": 0.1, "ok": True}]
    assert run["metrics"] == {"test": {"loss": None, "acc": 0.5}}
    assert run["status"] == "diverged"


def test_numpy_values_are_stored_as_plain_numbers(store: Store) -> None:
    run_id = _run(store)
    store.add_epoch(
        run_id,
        np.int64(1),
        {"acc": np.float32(0.5), "n": np.int64(3), "cm": np.array([[1, 0], [0, 1]])},
    )
    assert store.get_run(run_id)["epochs"] == [
        {"epoch": 1, "acc": 0.5, "n": 3, "cm": [[1, 0], [0, 1]]}
    ]


def test_value_json_cannot_hold_is_refused_and_nothing_written(store: Store) -> None:
    run_id = _run(store)
    with pytest.raises(TypeError, match=r"metrics\['bad'\]"):
        store.add_epoch(run_id, 1, {"bad": object()})
    with pytest.raises(TypeError):
        store.update(run_id, metrics={"fine": 1}, artifacts={"bad": {1, 2}})
    run = store.get_run(run_id)
    assert run["epochs"] == [] and run["metrics"] == {} and run["artifacts"] == {}


def test_update_merges_metrics_and_artifacts(store: Store) -> None:
    run_id = _run(store)
    store.update(run_id, metrics={"test": {"acc": 0.9}, "train_time_s": 12.5})
    store.update(run_id, metrics={"test": {"loss": 0.3}, "params": 1000})
    store.update(run_id, metrics={"train_time_s": 13.0})
    store.update(run_id, artifacts={"checkpoint": "ckpt/last.pt"})
    store.update(run_id, artifacts={"weights": "model.safetensors"})

    run = store.get_run(run_id)
    assert run["metrics"] == {
        "test": {"acc": 0.9, "loss": 0.3},
        "train_time_s": 13.0,
        "params": 1000,
    }
    assert run["artifacts"] == {"checkpoint": "ckpt/last.pt", "weights": "model.safetensors"}
    assert run["status"] == "running"  # untouched by metrics-only updates


def test_status_and_end_time(store: Store) -> None:
    run_id = _run(store)
    store.update(run_id, status="stopped", ended=True)
    stopped = store.get_run(run_id)
    assert stopped["status"] == "stopped"
    assert datetime.fromisoformat(stopped["ended_at"]) >= datetime.fromisoformat(
        stopped["started_at"]
    )

    store.set_status(run_id, "running")  # resumed: no longer ended
    assert store.get_run(run_id)["ended_at"] is None
    store.set_status(run_id, "completed")
    assert store.get_run(run_id)["status"] == "completed"

    with pytest.raises(StoreError, match="Unknown run status 'finished'"):
        store.set_status(run_id, "finished")
    assert store.get_run(run_id)["status"] == "completed"


def test_unknown_run_is_a_store_error(store: Store) -> None:
    for call in (
        lambda: store.get_run("deadbeef"),
        lambda: store.add_epoch("deadbeef", 1, {}),
        lambda: store.update("deadbeef", metrics={"a": 1}),
        lambda: store.truncate_epochs("deadbeef", 0),
        lambda: store.delete_run("deadbeef"),
    ):
        with pytest.raises(StoreError, match="No run with id 'deadbeef'.*convbench runs list"):
            call()


def test_resolve_id_by_unique_prefix(store: Store) -> None:
    # 17 ids over 16 possible first digits: at least two share their first character.
    ids = [_run(store) for _ in range(17)]
    by_first: dict[str, list[str]] = {}
    for run_id in ids:
        by_first.setdefault(run_id[0], []).append(run_id)
    shared = next(group for group in by_first.values() if len(group) > 1)

    for run_id in ids:
        assert store.resolve_id(run_id) == run_id
        unique = next(
            run_id[:n] for n in range(1, 9) if sum(i.startswith(run_id[:n]) for i in ids) == 1
        )
        assert store.resolve_id(unique) == run_id
        assert store.resolve_id(f"  {unique} ") == run_id

    with pytest.raises(StoreError, match="ambiguous") as info:
        store.resolve_id(shared[0][0])
    assert all(run_id in str(info.value) for run_id in shared[:5])
    assert "convbench runs list" in str(info.value)

    for missing in ("zz", "%", "_"):
        with pytest.raises(StoreError, match="No run id starts with.*convbench runs list"):
            store.resolve_id(missing)
    with pytest.raises(StoreError, match="Empty run id"):
        store.resolve_id("   ")


def test_list_runs_filters_and_newest_first(store: Store) -> None:
    group = store.create_group(kind="compare", name="optimisers", config={})
    first = _run(store)
    second = _run(store, kind="lr_find")
    third = _run(store, group_id=group)
    store.set_status(first, "completed")
    store.add_epoch(third, 1, {"acc": 0.5})

    listed = store.list_runs()
    assert [r["id"] for r in listed] == [third, second, first]
    assert all("epochs" not in r for r in listed)
    assert listed[0]["config"] == {"model": {"name": "blocks"}}
    assert [r["id"] for r in store.list_runs(kind="lr_find")] == [second]
    assert [r["id"] for r in store.list_runs(kind="train")] == [third, first]
    assert [r["id"] for r in store.list_runs(status="completed")] == [first]
    assert [r["id"] for r in store.list_runs(status="running")] == [third, second]
    assert [r["id"] for r in store.list_runs(group_id=group)] == [third]
    assert [r["id"] for r in store.list_runs(kind="train", status="running")] == [third]
    assert store.list_runs(status="failed") == []


def test_delete_run_removes_rows_and_artifacts(store: Store) -> None:
    doomed, kept = _run(store), _run(store)
    for run_id in (doomed, kept):
        store.add_epoch(run_id, 1, {"acc": 0.1})
        (store.run_dir(run_id) / "checkpoint.pt").write_bytes(b"\x00" * 16)
    folder = store.run_dir(doomed)
    assert folder.parent == store.artifacts_root and folder.is_dir()

    store.delete_run(doomed)

    assert not folder.exists()
    assert _epoch_rows(store, doomed) == 0
    assert [r["id"] for r in store.list_runs()] == [kept]
    assert (store.run_dir(kept) / "checkpoint.pt").is_file()
    assert _epoch_rows(store, kept) == 1
    with pytest.raises(StoreError):
        store.get_run(doomed)
    with pytest.raises(StoreError):
        store.delete_run(doomed)


def test_delete_run_without_artifacts_folder(store: Store) -> None:
    run_id = _run(store)
    store.delete_run(run_id)
    assert store.list_runs() == []


def test_run_dir_refuses_ids_that_leave_the_artifacts_folder(store: Store) -> None:
    for bad in ("../escape", "a/b", "", "."):
        with pytest.raises(StoreError, match="Invalid run id"):
            store.run_dir(bad)
    assert not (store.artifacts_root.parent / "escape").exists()


def test_data_survives_reopening(store_url: str, store: Store) -> None:
    run_id = _run(store)
    store.add_epoch(run_id, 1, {"acc": 0.75})
    store.close()
    with Store(store_url) as again:
        assert again.get_run(run_id)["epochs"] == [{"epoch": 1, "acc": 0.75}]
