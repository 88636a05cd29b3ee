"""Paged, sorted and filtered run listings (the web app's Runs page), SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from convbench.store import RunFilter, Store, StoreError


def _fill(store: Store) -> list[str]:
    ids = []
    for i in range(12):
        config = {"data": {"dataset": "digits" if i % 2 else "cifar10"},
                  "model": {"name": "blocks", "blocks": 2, "base_filters": 8 + 8 * (i % 3)}}
        rid = store.create_run(name=f"run_{i}%", config=config, seed=i, env={},
                               kind="train" if i < 10 else "svm")
        store.add_epoch(rid, 1, {"val_accuracy": 0.5})
        if i % 4 == 0:
            store.update(rid, metrics={"test_accuracy": i / 12}, status="completed", ended=True)
        ids.append(rid)
    return ids


def test_filters_sort_and_pages(store: Store) -> None:
    ids = _fill(store)
    digits = store.page_runs(RunFilter(dataset="digits"), limit=4)
    assert digits["total"] == 6 and len(digits["runs"]) == 4
    assert {r["dataset"] for r in digits["runs"]} == {"digits"}
    rest = store.page_runs(RunFilter(dataset="digits"), offset=4, limit=4)
    assert len(rest["runs"]) == 2
    assert not {r["id"] for r in rest["runs"]} & {r["id"] for r in digits["runs"]}

    best = store.page_runs(sort="test_accuracy", descending=True, limit=12)["runs"]
    accs = [r["test_accuracy"] for r in best]
    assert accs[:3] == [8 / 12, 4 / 12, 0.0] and accs[3:] == [None] * 9  # missing last
    assert best[0]["id"] == ids[8] and best[0]["epochs_done"] == 1

    assert store.page_runs(RunFilter(model="B2FL16"))["total"] == 4
    assert store.page_runs(RunFilter(kind="svm"))["total"] == 2
    assert store.page_runs(RunFilter(status="completed", dataset="cifar10"))["total"] == 3
    # Free text: literal (the % in names is no wildcard), case-insensitive, over model too.
    assert store.page_runs(RunFilter(text="RUN_1%"))["total"] == 1  # not run_10%, run_11%
    assert store.page_runs(RunFilter(text="run_1"))["total"] == 3
    assert store.page_runs(RunFilter(text="b2fl24"))["total"] == 4
    assert store.page_runs(RunFilter(text="n_%x"))["total"] == 0

    facets = store.run_facets()
    assert facets["model"] == ["B2FL16", "B2FL24", "B2FL8"]
    assert facets["kind"] == ["svm", "train"] and facets["dataset"] == ["cifar10", "digits"]


def test_bad_listing_requests_are_store_errors(store: Store) -> None:
    with pytest.raises(StoreError, match="Cannot sort runs by 'config'"):
        store.page_runs(sort="config")
    with pytest.raises(StoreError, match="A page holds"):
        store.page_runs(limit=0)


def test_activity_changes_with_epochs_and_ends(store: Store) -> None:
    rid = store.create_run(name=None, config={}, seed=0, env={})
    before = store.activity()
    assert before["running"] == {rid: 0}
    store.add_epoch(rid, 1, {})
    assert store.activity()["running"] == {rid: 1}
    store.update(rid, status="completed", ended=True)
    after = store.activity()
    assert after["running"] == {} and after["statuses"]["completed"][0] == 1
