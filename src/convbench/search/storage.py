"""Optuna studies in the run store's own database, and a work queue on top of them.

Several worker processes share one SQLite file. Optuna's sessions read and then write inside
one transaction; in WAL mode such a deferred transaction fails at once with "database is
locked" when another process wrote in between, instead of waiting. So every Optuna
transaction here starts with ``BEGIN IMMEDIATE`` (it waits, up to the busy timeout, for the
write lock): Optuna's work is tiny next to training, so serialising it costs nothing.

Work is a queue of *enqueued* trials: a grid point, a survivor of screening, or an empty slot
that the sampler (random, TPE) fills when the trial starts. A worker pops a waiting trial by
switching it to RUNNING, which Optuna allows only once per trial, so no trial runs twice and
none is lost; a killed worker's RUNNING trials are put back by :func:`requeue_orphans`.

>>> from convbench.store import Store                                   # doctest: +SKIP
>>> storage = open_storage(Store("runs.db"))                            # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import event

from ..store import Store
from ..store.database import BUSY_TIMEOUT_MS

PHASES = ("screen", "train", "audit")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; convbench prints its own lines."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)


def _serialise_sqlite(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        # Autocommit at the driver: the "begin" hook below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_storage(store: Store, *, create: bool = True) -> RDBStorage:
    """Optuna's RDB storage on the store's database (tables created when ``create``)."""
    quiet_optuna()
    sqlite = store.url.startswith("sqlite")
    kwargs = {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000}} if sqlite else {}
    storage = RDBStorage(store.url, engine_kwargs=kwargs, skip_table_creation=not create,
                         skip_compatibility_check=not create)
    if sqlite:
        _serialise_sqlite(storage.engine)
        storage.engine.dispose()  # connections opened before the hooks would lack them
    return storage


def study_name(group_id: str, phase: str) -> str:
    return f"convbench-{group_id}-{phase}"


def get_study(storage: RDBStorage, group_id: str, phase: str, *,
              sampler: optuna.samplers.BaseSampler | None = None,
              pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """The phase's study (created on first use; samplers and pruners are not stored by
    Optuna, so every process passes its own)."""
    return optuna.create_study(study_name=study_name(group_id, phase), storage=storage,
                               direction="maximize", load_if_exists=True,
                               sampler=sampler or optuna.samplers.RandomSampler(seed=0),
                               pruner=pruner or optuna.pruners.NopPruner())


def trials(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=states)


def fixed_point(t: FrozenTrial) -> dict[str, Any]:
    """The parameters a trial was enqueued with (or sampled, once it ran)."""
    return dict(t.system_attrs.get("fixed_params") or {}) | dict(t.params)


def queued_keys(study: optuna.Study) -> set[str]:
    """Keys of the configurations already in the study (orphans excluded: they were re-queued)."""
    return {t.user_attrs["key"] for t in trials(study)
            if "key" in t.user_attrs and not t.user_attrs.get("orphaned")}


def enqueue(study: optuna.Study, params: dict[str, Any], attrs: dict[str, Any]) -> None:
    study.enqueue_trial(params, user_attrs=attrs)


def pop(storage: RDBStorage, study: optuna.Study) -> optuna.Trial | None:
    """Claim the oldest waiting trial for this process, or None when the queue is empty."""
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                study.get_trials(deepcopy=False)  # let the study's trial cache learn of it
                return optuna.Trial(study, trial_id)
        except UpdateFinishedTrialError:
            continue  # another process claimed and finished it meanwhile
    return None


def requeue_orphans(storage: RDBStorage, study: optuna.Study) -> int:
    """Put back trials left RUNNING by killed workers: mark each failed (``orphaned``) and
    enqueue it again with the same parameters and its ``origin`` number, so its finished runs
    are found and reused. Call only while no worker runs."""
    study_id = storage.get_study_id_from_name(study.study_name)
    n = 0
    for t in trials(study, (TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "orphaned", True)
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        attrs = {k: v for k, v in t.user_attrs.items() if k in ("key", "lr_bounds", "early",
                                                               "group", "slot", "round",
                                                               "seeds")}
        attrs["origin"] = t.user_attrs.get("origin", t.number)
        enqueue(study, fixed_point(t), attrs)
        n += 1
    return n


def waiting(study: optuna.Study) -> int:
    return len(trials(study, (TrialState.WAITING,)))
