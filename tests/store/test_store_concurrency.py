"""Several processes writing to one store at once lose nothing and never hit "locked"."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa

from convbench.store import Store
from convbench.store.schema import epochs

WORKERS, RUNS_EACH, EPOCHS_EACH = 4, 5, 20


def _write_runs(url: str, start, worker: int) -> None:
    """One worker process: open the (possibly still empty) store and write its runs."""
    # All workers open the store together, so they also race to create the tables.
    start.wait(timeout=120)
    with Store(url) as store:
        for i in range(RUNS_EACH):
            run_id = store.create_run(
                name=f"w{worker}-r{i}", config={"worker": worker, "i": i}, seed=i, env={}
            )
            for epoch in range(1, EPOCHS_EACH + 1):
                store.add_epoch(run_id, epoch, {"loss": 1.0 / epoch, "worker": worker})
            store.update(
                run_id, metrics={"final_loss": 1.0 / EPOCHS_EACH}, status="completed", ended=True
            )
            (store.run_dir(run_id) / "done").write_text(str(worker))


def test_four_processes_write_to_one_store(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spawned workers inherit the environment: PostgreSQL artifacts go under tmp_path.
    monkeypatch.setenv("CONVBENCH_ARTIFACTS", str(tmp_path / "pg-artifacts"))
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WORKERS)
    workers = [
        context.Process(target=_write_runs, args=(store_url, start, w)) for w in range(WORKERS)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=300)
    for process in workers:
        if process.is_alive():
            process.kill()
    assert [p.exitcode for p in workers] == [0] * WORKERS

    with Store(store_url) as store:
        listed = store.list_runs()
        assert len(listed) == WORKERS * RUNS_EACH
        assert len({r["id"] for r in listed}) == WORKERS * RUNS_EACH
        names = {r["name"] for r in listed}
        assert names == {f"w{w}-r{i}" for w in range(WORKERS) for i in range(RUNS_EACH)}
        with store.engine.connect() as conn:
            rows = conn.scalar(sa.select(sa.func.count()).select_from(epochs))
        assert rows == WORKERS * RUNS_EACH * EPOCHS_EACH
        for summary in listed:
            run = store.get_run(summary["id"])
            assert run["status"] == "completed" and run["ended_at"] is not None
            assert [e["epoch"] for e in run["epochs"]] == list(range(1, EPOCHS_EACH + 1))
            assert all(e["worker"] == run["config"]["worker"] for e in run["epochs"])
            assert run["metrics"] == {"final_loss": 1.0 / EPOCHS_EACH}
            done = store.artifacts_root / run["id"] / "done"
            assert done.read_text() == str(run["config"]["worker"])


def _add_epochs(store: Store, run_id: str, first: int) -> None:
    for epoch in range(first, first + 10):
        store.add_epoch(run_id, epoch, {"epoch_from": first})


def test_forked_children_can_use_the_parents_store(store: Store) -> None:
    # The parent's pooled connection must not be reused by the children: for PostgreSQL
    # a shared socket desynchronises the protocol.
    run_id = store.create_run(name=None, config={}, seed=0, env={})
    store.get_run(run_id)  # leaves an open connection in the parent's pool
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_add_epochs, args=(store, run_id, first)) for first in (1, 11)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    for child in children:
        if child.is_alive():
            child.kill()
    assert [c.exitcode for c in children] == [0, 0]
    store.add_epoch(run_id, 21, {"epoch_from": 21})
    assert [e["epoch"] for e in store.get_run(run_id)["epochs"]] == list(range(1, 22))
