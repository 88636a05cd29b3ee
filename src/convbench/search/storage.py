"""Optuna studies in the run store's own database, and a work queue on top of them.

Several worker processes share one SQLite file. Optuna's sessions read and then write inside
one transaction; in WAL mode such a deferred transaction fails at once with "database is
locked" when another process wrote in between, instead of waiting. So every Optuna
transaction here starts with ``BEGIN IMMEDIATE`` (it waits, up to the busy timeout, for the
write lock): Optuna's work is tiny next to training, so serialising it costs nothing.

Work is a queue of *enqueued* trials: a grid point, a survivor of screening, or an empty slot
that the sampler (random, TPE) fills when the trial starts. A worker pops a waiting trial by
switching it to RUNNING, which Optuna allows only once per trial, so no trial runs twice and
none is lost.

Liveness is Optuna's own RDB heartbeat: the worker running a trial records a heartbeat every
``heartbeat_interval`` seconds; a RUNNING trial whose heartbeat is older than ``grace_period``
is failed by whichever worker calls :func:`requeue_stale` first, and Optuna's
``RetryHeartbeatStaleTrialCallback`` queues a copy (same parameters and attributes); the
failed one is marked ``orphaned`` and the copy keeps its ``origin`` number, so the copy finds
and resumes its runs. A stopped worker puts its own trial back at once (:func:`requeue`), and
a resumed search on SQLite (one machine, no other worker) puts back every RUNNING trial
(:func:`requeue_orphans`).

>>> from convbench.store import Store                                   # doctest: +SKIP
>>> storage = open_storage(Store("runs.db"))                            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import event

from ..store import Store
from ..store.database import BUSY_TIMEOUT_MS, is_sqlite, pg_connect_args, resolve_url

PHASES = ("screen", "train", "audit")
QUEUE_PHASE = "compare"  # the one study of a comparison queued for workers
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# Seconds between heartbeats of a running trial, and without one before another worker puts
# the trial back in the queue. The environment variables shorten them for tests and drills.
HEARTBEAT_S = int(os.environ.get("CONVBENCH_HEARTBEAT_S") or 15)
GRACE_S = int(os.environ.get("CONVBENCH_GRACE_S") or 60)
# Attributes of a trial that a re-queued copy keeps (the rest is redone).
# A queued comparison's trial is its ``job`` (which run) and ``label`` (the run's name).
KEPT_ATTRS = ("key", "lr_bounds", "early", "group", "slot", "round", "seeds", "job", "label")


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


def _retry_stale(storage: RDBStorage, study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's retry callback; the copy keeps what :func:`requeue` keeps. (The failed trial
    cannot be marked any more: :func:`orphaned` knows it as a failure without an error.)"""
    trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in KEPT_ATTRS} | \
        {"origin": origin_of(trial), "requeued_by": "heartbeat"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback()(study, trial)


def orphaned(t: FrozenTrial) -> bool:
    """Whether ``t`` was put back in the queue (not a result): marked so by :func:`requeue`,
    or failed by the heartbeat check (the only failure without an ``error``)."""
    return bool(t.user_attrs.get("orphaned")) or (
        t.state == TrialState.FAIL and "error" not in t.user_attrs)


def _trial_id(storage: RDBStorage, study: optuna.Study, t: FrozenTrial) -> int:
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, t.number)


def require_shared_store(store: Store | str | None, what: str, error: type[Exception]) -> None:
    """``--workers 0`` leaves ``what`` (the runs, the trials) for `convbench worker` on other
    machines: refuse a SQLite file, which no other machine reaches (a path or URL is checked
    without creating the file)."""
    if store.is_sqlite if isinstance(store, Store) else is_sqlite(resolve_url(store)):
        raise error(f"--workers 0 queues {what} for `convbench worker` on other machines, "
                    "which needs a PostgreSQL store (--store postgresql://…); with a SQLite "
                    "file give --workers 1 or more.")


def open_storage(store: Store, *, create: bool = True) -> RDBStorage:
    """Optuna's RDB storage on the store's database (tables created when ``create``), with
    the heartbeat on (see the module doc)."""
    quiet_optuna()
    sqlite = store.is_sqlite
    # PostgreSQL: test pooled connections first, so a server restart costs a reconnect.
    kwargs = {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000}} if sqlite else \
        {"pool_pre_ping": True, "connect_args": pg_connect_args(resolve_url(store.url))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        storage = RDBStorage(store.url, engine_kwargs=kwargs, skip_table_creation=not create,
                             skip_compatibility_check=not create, heartbeat_interval=HEARTBEAT_S,
                             grace_period=GRACE_S,
                             heartbeat_stale_trial_callback=lambda study, trial: _retry_stale(
                                 storage, study, trial))
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
            if "key" in t.user_attrs and not orphaned(t)}


def enqueue(study: optuna.Study, params: dict[str, Any], attrs: dict[str, Any]) -> None:
    study.enqueue_trial(params, user_attrs=attrs)


def origin_of(t: FrozenTrial | optuna.Trial) -> int:
    """The number of a trial's first attempt, which its runs are named after: a re-queued
    copy carries it as ``origin`` (both :func:`requeue` and the heartbeat retry set it)."""
    return int(t.user_attrs.get("origin", t.number))


def pop(storage: RDBStorage, study: optuna.Study) -> optuna.Trial | None:
    """Claim the oldest waiting trial for this process, or None when the queue is empty."""
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            # The first heartbeat before the claim: Optuna never counts a RUNNING trial
            # without one as stale, so a kill right after the claim would strand it.
            storage.record_heartbeat(trial_id)
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                study.get_trials(deepcopy=False)  # let the study's trial cache learn of it
                return optuna.Trial(study, trial_id)
        except UpdateFinishedTrialError:
            continue  # another process claimed and finished it meanwhile
    return None


def requeue(storage: RDBStorage, study: optuna.Study, t: FrozenTrial, why: str) -> bool:
    """Put the RUNNING trial ``t`` back in the queue: mark it failed (``orphaned``) and
    enqueue it again with the same parameters and its ``origin`` number, so its finished runs
    are found and reused. False when it had already finished (or been put back)."""
    trial_id = _trial_id(storage, study, t)
    storage.set_trial_user_attr(trial_id, "orphaned", True)
    try:
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    attrs = {k: v for k, v in t.user_attrs.items() if k in KEPT_ATTRS}
    enqueue(study, fixed_point(t), attrs | {"origin": origin_of(t), "requeued_by": why})
    return True


def requeue_orphans(storage: RDBStorage, study: optuna.Study) -> int:
    """Put back every trial left RUNNING by killed workers. Call only while no worker runs
    (a search on SQLite being resumed); elsewhere :func:`requeue_stale` finds them."""
    return sum(requeue(storage, study, t, "resume")
               for t in trials(study, (TrialState.RUNNING,)))


def requeue_stale(study: optuna.Study) -> None:
    """Optuna's ``fail_stale_trials``: RUNNING trials without a heartbeat for the grace period
    are failed and re-queued (:func:`_retry_stale`), once, by whichever worker calls first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def waiting(study: optuna.Study) -> int:
    return len(trials(study, (TrialState.WAITING,)))
