"""The Runs listing in memory over a real SQLite store: filters, sorting, paging, and
keeping up with runs started, ended and deleted by other processes."""

from __future__ import annotations

import pytest

from convbench.errors import StoreError
from convbench.server.listing import RunFilter, RunIndex
from convbench.store import Store


@pytest.fixture
def store(tmp_path):
    with Store(str(tmp_path / "runs.db")) as opened:
        yield opened


def _fill(store: Store) -> list[str]:
    ids = []
    for i in range(12):
        config = {"data": {"dataset": "digits" if i % 2 else "cifar10"},
                  "model": {"name": "blocks", "blocks": 2, "base_filters": 8 + 8 * (i % 3)}}
        rid = store.create_run(name=f"run_{i}%", config=config, seed=i, env={},
                               kind="train" if i < 10 else "svm")
        if i % 4 == 0:
            store.update(rid, metrics={"test_accuracy": i / 12}, status="completed", ended=True)
        ids.append(rid)
    return ids


def test_filters_sort_and_pages(store):
    ids = _fill(store)
    index = RunIndex(store)
    digits = index.page(RunFilter(dataset="digits"), limit=4)
    assert digits["total"] == 6 and len(digits["runs"]) == 4
    rest = index.page(RunFilter(dataset="digits"), offset=4, limit=4)
    assert len(rest["runs"]) == 2
    assert not {r["id"] for r in rest["runs"]} & {r["id"] for r in digits["runs"]}
    newest = index.page(RunFilter(), limit=3)["runs"]
    assert [r["id"] for r in newest] == ids[::-1][:3]

    best = index.page(RunFilter(), sort="test_accuracy", descending=True, limit=12)["runs"]
    assert [r["test_accuracy"] for r in best[:3]] == [8 / 12, 4 / 12, 0.0]
    assert [r["test_accuracy"] for r in best[3:]] == [None] * 9  # missing last, both ways
    worst = index.page(RunFilter(), sort="test_accuracy", descending=False, limit=12)["runs"]
    assert [r["test_accuracy"] for r in worst[:4]] == [0.0, 4 / 12, 8 / 12, None]

    assert index.page(RunFilter(model="B2FL16"))["total"] == 4
    assert index.page(RunFilter(kind="svm"))["total"] == 2
    assert index.page(RunFilter(status="completed", dataset="cifar10"))["total"] == 3
    # Free text: literal (no wildcards), case-insensitive, over the model's name and shorthand.
    assert index.page(RunFilter(text="RUN_1%"))["total"] == 1  # not run_10%, run_11%
    assert index.page(RunFilter(text="run_1"))["total"] == 3
    assert index.page(RunFilter(text="b2fl24"))["total"] == 4
    assert index.page(RunFilter(text="BLOCKS"))["total"] == 12
    assert index.page(RunFilter(text="n_%x"))["total"] == 0

    facets = index.facets()
    assert facets["model"] == ["B2FL16", "B2FL24", "B2FL8"]
    assert facets["kind"] == ["svm", "train"] and facets["dataset"] == ["cifar10", "digits"]
    with pytest.raises(StoreError, match="Cannot sort runs by 'config'"):
        index.page(RunFilter(), sort="config")
    with pytest.raises(StoreError, match="A page holds"):
        index.page(RunFilter(), limit=0)


def test_keeps_up_with_other_processes(store, tmp_path):
    ids = _fill(store)
    index = RunIndex(store)
    index.refresh()
    # Another process (its own Store) starts a run, ends one and deletes one.
    with Store(str(tmp_path / "runs.db")) as other:
        new = other.create_run(name="late", config={"model": {"name": "resnet20"}}, seed=0,
                               env={})
        other.add_epoch(new, 1, {})
        other.update(ids[1], status="failed", metrics={"error": "boom"}, ended=True)
        other.delete_run(ids[2])
    index.refresh()
    rows = {r["id"]: r for r in index.page(RunFilter(), limit=50)["runs"]}
    assert len(rows) == 12 and ids[2] not in rows
    assert rows[new]["status"] == "running" and rows[new]["epochs_done"] == 1
    assert rows[ids[1]]["status"] == "failed" and rows[ids[1]]["error"] == "boom"
