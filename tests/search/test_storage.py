"""The trial queue on the run store's SQLite file: no trial lost or run twice, even with
several processes popping at once; a killed worker's trials are put back."""

import multiprocessing as mp

import pytest
from optuna.trial import TrialState

from convbench.search.storage import (
    enqueue,
    get_study,
    open_storage,
    pop,
    queued_keys,
    requeue_orphans,
    trials,
)
from convbench.store import Store


def _drain(url, gid, out):
    store = Store(url)
    storage = open_storage(store, create=False)
    study = get_study(storage, gid, "train")
    got = []
    while (trial := pop(storage, study)) is not None:
        trial.set_user_attr("seen", True)  # a write inside the claim, like a real trial
        study.tell(trial, float(trial.number))
        got.append(trial.number)
    out.put(got)


def test_three_processes_pop_every_trial_exactly_once(store_url):
    store = Store(store_url)
    gid = store.create_group(kind="search", name="q", config={})
    storage = open_storage(store)
    study = get_study(storage, gid, "train")
    for i in range(40):
        enqueue(study, {}, {"key": f"k{i}"})
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_drain, args=(store.url, gid, out)) for _ in range(2)]
    for p in procs:
        p.start()
    _drain(store.url, gid, out)
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    popped = [n for _ in range(3) for n in out.get(timeout=10)]
    assert sorted(popped) == list(range(40))  # none lost, none twice
    done = trials(study, (TrialState.COMPLETE,))
    assert len(done) == 40 and all(t.user_attrs["seen"] for t in done)


def test_orphans_are_failed_and_requeued_with_their_origin(store_url):
    store = Store(store_url)
    gid = store.create_group(kind="search", name="q", config={})
    storage = open_storage(store)
    study = get_study(storage, gid, "screen")
    for i in range(3):
        enqueue(study, {"x": i}, {"key": f"k{i}"})
    first, second = pop(storage, study), pop(storage, study)
    first.suggest_categorical("x", [0, 1, 2])
    assert requeue_orphans(storage, study) == 2
    states = {t.number: t.state for t in trials(study)}
    assert states[first.number] == states[second.number] == TrialState.FAIL
    requeued = [t for t in trials(study, (TrialState.WAITING,)) if "origin" in t.user_attrs]
    assert sorted(t.user_attrs["origin"] for t in requeued) == [first.number, second.number]
    assert sorted(t.system_attrs["fixed_params"]["x"] for t in requeued) == [0, 1]
    assert queued_keys(study) == {"k0", "k1", "k2"}
    assert requeue_orphans(storage, study) == 0


@pytest.mark.parametrize("phase", ["screen", "train", "audit"])
def test_studies_live_in_the_run_store_database(store_url, phase):
    import sqlite3

    store = Store(store_url)
    gid = store.create_group(kind="search", name="q", config={})
    get_study(open_storage(store), gid, phase)
    with sqlite3.connect(store_url) as db:
        names = [r[0] for r in db.execute("select study_name from studies")]
    assert names == [f"convbench-{gid}-{phase}"]
