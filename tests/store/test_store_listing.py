"""Short run rows for listings and the live snapshot, on SQLite and PostgreSQL."""

from __future__ import annotations

from convbench.store import Store


def _config(i: int) -> dict:
    return {"data": {"dataset": "digits" if i % 2 else "cifar10"},
            "model": {"name": "blocks", "blocks": 2, "base_filters": 8 + 8 * (i % 3)}}


def test_run_summaries_all_new_and_by_id(store: Store) -> None:
    ids = []
    for i in range(4):
        rid = store.create_run(name=f"r{i}", config=_config(i), seed=i, env={})
        store.add_epoch(rid, 1, {"val_accuracy": 0.5})
        ids.append(rid)
    store.update(ids[0], metrics={"test_accuracy": 0.75, "params_total": 1234},
                 status="completed", ended=True)
    other = store.create_run(name="resnet", config={"model": {"name": "resnet20"}}, seed=0,
                             env={}, kind="svm")
    detect = store.create_run(name="pages", config={"data": {"source": "synth"},
                                                     "model": {"backbone": "resnet18"}},
                              seed=0, env={}, kind="detect")
    rows = {r["id"]: r for r in store.run_summaries()}
    assert (rows.pop(detect)["dataset"], store.run_summaries(ids=[detect])[0]["model"]) == \
        ("synth", "resnet18")  # a detection run is listed by its data source and backbone
    assert len(rows) == 5
    first = rows[ids[0]]
    assert (first["model"], first["model_name"], first["dataset"]) == ("B2FL8", "blocks",
                                                                       "cifar10")
    assert first["test_accuracy"] == 0.75 and first["params_total"] == 1234
    assert first["status"] == "completed" and first["epochs_done"] == 1
    assert rows[other]["model"] == "resnet20" and rows[other]["dataset"] is None
    assert rows[other]["epochs_done"] == 0 and rows[other]["kind"] == "svm"
    later = store.run_summaries(started_after=rows[ids[3]]["started_at"])
    assert [r["id"] for r in later] == [ids[3], other, detect]
    assert [r["model"] for r in store.run_summaries(ids=[ids[2]])] == ["B2FL24"]


def test_activity_changes_with_epochs_and_ends(store: Store) -> None:
    rid = store.create_run(name=None, config={}, seed=0, env={})
    assert store.activity()["running"] == {rid: 0}
    store.add_epoch(rid, 1, {})
    assert store.activity()["running"] == {rid: 1}
    store.update(rid, status="completed", ended=True)
    after = store.activity()
    assert after["running"] == {} and after["statuses"]["completed"][0] == 1
