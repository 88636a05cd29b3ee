"""A worker: claim waiting trials of open searches (and runs of queued comparisons) in the
run store and run them.

The same loop runs as each of ``convbench search --workers N``'s (and ``convbench compare
--workers N``'s) local processes and as ``convbench worker`` on any machine that reaches a
PostgreSQL store; nothing coordinates them but the database. A worker

* claims a trial by switching it from WAITING to RUNNING (:func:`~.storage.pop`: once per
  trial), records Optuna's heartbeat for it while it runs, and before each claim lets
  Optuna fail and re-queue trials whose heartbeat stopped (:func:`~.storage.requeue_stale`);
* queues a search's next phase, or writes its summary, when it finds the phase finished
  (the ``advance`` function it is given, under the search's lock);
* notices when the trial it runs was re-queued meanwhile (it was cut off for longer than the
  grace period) and abandons it, leaving the run to the worker that took it over;
* on SIGTERM or Ctrl-C puts its trial back in the queue at once and stops.

A comparison queued with ``convbench compare --workers 0`` (or ``--workers N`` ≥ 2, drained by
N local workers) is the same queue: one study
(phase ``compare``) with one trial per run, claimed, heartbeaten and re-queued the same way;
only what a trial does and when the group is done are the comparison's, given to the worker
as a :class:`QueuedKind` (``convbench.compare.queued_kinds``: the comparison module sits
beside this one, so it is handed in rather than imported).

>>> spec = WorkerSpec("postgresql://me@db/runs", until_empty=True)      # doctest: +SKIP
>>> loop(spec, advance)                                                 # doctest: +SKIP
3
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from ..atomic import DiskFull
from ..errors import ConvbenchError
from ..store import Store
from ..store.database import is_disconnect
from ..training.lifecycle import Abandoned, Stopped
from . import space as sp
from .samplers import make_pruner, make_sampler
from .storage import (
    GRACE_S,
    HEARTBEAT_S,
    PHASES,
    get_study,
    open_storage,
    origin_of,
    pop,
    requeue,
    requeue_stale,
    trials,
    waiting,
)
from .trials import Context, Repeated, execute

ENV_HOST = "CONVBENCH_HOST"
POLL_S = 2.0  # an idle worker looks for new work this often

# advance(store, storage, group_id) → "open" while the search has work, else its status.
Advance = Callable[[Store, Any, str], str]


def host_name() -> str:
    """This worker's host name in the status (``$CONVBENCH_HOST`` overrides the real one)."""
    return os.environ.get(ENV_HOST) or socket.gethostname()


@dataclass
class WorkerSpec:
    """What one worker does. ``group``: only this search; ``until_empty``: stop when no open
    search has a waiting trial (else wait for new ones); ``follow``: a local worker of a
    search, which stays until that search ends (its next phase may still come);
    ``deadline``: claim nothing after this time (the search's time budget)."""

    store_url: str
    artifacts: str | None = None
    group: str | None = None
    max_trials: int | None = None
    until_empty: bool = False
    follow: bool = False
    deadline: float | None = None
    quiet: bool = True
    index: int | None = None


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


class _Beat:
    """Optuna's heartbeat for one running trial, from a thread; also this worker's line in
    the search's status. When the trial is no longer RUNNING (another worker re-queued it
    while this one was cut off), it interrupts the main thread with :class:`Abandoned`."""

    def __init__(self, storage: Any, trial_id: int, report: Callable[[], None]):
        self.storage, self.trial_id, self.report = storage, trial_id, report
        self.lost = False
        self.armed = False  # only while the trial's work runs may Abandoned be raised
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Beat:
        self.armed = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed = False
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.storage.record_heartbeat(self.trial_id)
                state = self.storage.get_trial(self.trial_id).state
                self.report()
            except Exception:  # the database is away (restart, network): beat again later
                continue
            if state != TrialState.RUNNING and not self.lost:
                self.lost = True
                if self.armed and _ABANDON_HANDLER_SET:
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)


_ABANDON_HANDLER_SET = False
_CURRENT: list[_Beat] = []  # the beat of the trial running now (for the signal handler)


def _abandon(signum: int, frame: Any) -> None:
    if _CURRENT and _CURRENT[0].armed:
        raise Abandoned("the trial was re-queued by another worker")


@contextmanager
def _abandon_signal() -> Iterator[None]:
    """SIGUSR1 (sent by the heartbeat thread) raises :class:`Abandoned` in the main thread."""
    global _ABANDON_HANDLER_SET
    try:
        previous = signal.signal(signal.SIGUSR1, _abandon)
    except ValueError:  # not the main thread: a lost trial is noticed when it ends
        yield
        return
    _ABANDON_HANDLER_SET = True
    try:
        yield
    finally:
        _ABANDON_HANDLER_SET = False
        signal.signal(signal.SIGUSR1, previous)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    try:
        previous = {sig: signal.signal(sig, signal.SIG_IGN)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no handlers to mind
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True)
class QueuedKind:
    """How workers serve queued groups of a kind other than a search: the phase (study) its
    trials wait in, ``advance`` (``"open"`` while work waits or runs, else the group's final
    status, recorded) and ``run(store, group_id, trial)`` → the trial's value."""

    phase: str
    advance: Advance
    run: Callable[[Store, str, optuna.Trial], float]


def is_queued(group: dict) -> bool:
    """Whether workers serve ``group``: a search, or a comparison queued for workers."""
    return group["kind"] == "search" or "queue" in (group.get("metrics") or {})


class _Searches:
    """The open searches and queued comparisons this worker serves, with their specs and
    studies (one sampler and pruner per search and phase, made once)."""

    def __init__(self, store: Store, storage: Any, w: WorkerSpec, salt: int,
                 advance: Advance, others: dict[str, QueuedKind]):
        self.store, self.storage, self.w, self.salt = store, storage, w, salt
        self._advance_search, self.others = advance, others
        self.specs: dict[str, sp.SearchSpec] = {}
        self.studies: dict[tuple[str, str], optuna.Study] = {}
        self.told: set[str] = set()
        self.kinds: dict[str, QueuedKind] = {}  # group id → its kind, for groups not searches

    def open_ids(self) -> list[str]:
        if self.w.group:
            return [self.w.group]
        # Every POLL_S while idle: only the running groups are read.
        groups = self.store.list_groups(status="running")
        return [g["id"] for g in reversed(groups)  # oldest first
                if is_queued(g)
                and (g["kind"] == "search" or g["kind"] in self.others)]

    def phases(self, group: dict) -> tuple[str, ...]:
        if group["kind"] == "search":
            return PHASES
        self.kinds[group["id"]] = self.others[group["kind"]]
        return (self.kinds[group["id"]].phase,)

    def advance(self, gid: str) -> str:
        if gid in self.kinds:
            return self.kinds[gid].advance(self.store, self.storage, gid)
        return self._advance_search(self.store, self.storage, gid)

    def execute(self, gid: str, phase: str, trial: optuna.Trial, threads: int | None) -> float:
        """Run the claimed trial: a search's (:func:`~.trials.execute`) or another kind's."""
        if gid in self.kinds:
            return self.kinds[gid].run(self.store, gid, trial)
        # Runs train silently (progress bars of parallel runs would garble); ``quiet`` is
        # for the one line per finished trial.
        return execute(Context(self.store, self.spec(gid), gid, phase, threads, quiet=True),
                       trial)

    def spec(self, gid: str) -> sp.SearchSpec:
        if gid not in self.specs:
            config = self.store.get_group(gid)["config"]
            self.specs[gid] = sp.parse(config["spec"], source=f"search {gid}")
        return self.specs[gid]

    def study(self, gid: str, phase: str) -> optuna.Study:
        if (gid, phase) not in self.studies and gid in self.kinds:
            self.studies[gid, phase] = get_study(self.storage, gid, phase)
        if (gid, phase) not in self.studies:
            spec = self.spec(gid)
            probe = get_study(self.storage, gid, phase)
            # Trials already started or finished, not the queued slots: a salt made from
            # those would replay the first start's draws at a resume.
            salt = self.salt + 1000 * (len(trials(probe)) - waiting(probe))
            self.studies[gid, phase] = get_study(
                self.storage, gid, phase, sampler=make_sampler(spec, phase, salt, 2),
                pruner=make_pruner(spec, phase))
        return self.studies[gid, phase]

    def usable(self, gid: str, meta: dict) -> bool:
        """Whether this worker may claim trials of ``gid``: within its time budget, and with
        the search's artifacts folder reachable."""
        deadline = meta.get("deadline_at")
        if deadline is not None and time.time() >= deadline:
            return False
        if self.w.deadline is not None and time.time() >= self.w.deadline:
            return False
        marker = meta.get("artifacts_marker")
        if marker and not self.store.artifacts.exists(marker):
            if gid not in self.told:
                self.told.add(gid)
                _say(False, f"group {gid} keeps its checkpoints in {meta.get('artifacts')} "
                            f"(on {meta.get('artifacts_host')}), which this worker does not "
                            f"reach as {self.store.artifacts.location}: skipping it. Start "
                            "the worker with --artifacts pointing at that shared place.")
            return False
        return True


def loop(w: WorkerSpec, advance: Advance, others: dict[str, QueuedKind] | None = None) -> int:
    """Claim and run trials as ``w`` says (of searches, whose phases ``advance`` moves on,
    and of the queued groups whose kinds ``others`` maps); returns how many this worker ran."""
    store = Store(w.store_url, artifacts=w.artifacts)
    storage = open_storage(store, create=w.group is None)
    me = {"host": host_name(), "pid": os.getpid()}
    key = f"{me['host']}/{me['pid']}"
    salt = (w.index + 1) if w.index is not None else zlib.crc32(key.encode()) % 997 + 1
    searches = _Searches(store, storage, w, salt, advance, others or {})
    done = 0

    def report(gid: str, state: str, trial: str | None = None) -> None:
        store.update_group(gid, metrics={"workers": {key: {
            **me, "state": state, "trial": trial,
            "heartbeat": datetime.now(UTC).isoformat(timespec="seconds")}}})

    def safe_report(gid: str, state: str, trial: str | None = None) -> None:
        try:
            report(gid, state, trial)
        except Exception as err:  # the status line must never cost a trial
            if not is_disconnect(err):
                raise

    outage = False
    with _abandon_signal():
        while w.max_trials is None or done < w.max_trials:
            try:
                claim = _claim(store, storage, searches)
                if claim is None:
                    if _finished(store, w, searches):
                        return done
                    time.sleep(POLL_S)
                    continue
                if outage:
                    _say(False, "the run store is back")
                outage = False
                gid, phase, study, trial = claim
                _run_trial(store, searches, gid, phase, study, trial,
                           lambda state, what=None, gid=gid: safe_report(gid, state, what))
                done += 1
            except Exception as err:
                # The database restarted or the network dropped: wait and reconnect. A trial
                # cut short stays RUNNING without heartbeats, so it goes back in the queue
                # after the grace period (its runs resume from their checkpoints).
                if not is_disconnect(err):
                    raise
                if not outage:
                    reason = str(err).strip().splitlines()[0][:200]
                    _say(False, f"lost the run store ({reason}); waiting for it to come back "
                                "(a trial cut short goes back in the queue)")
                outage = True
                time.sleep(POLL_S)
        return done


def _claim(store: Store, storage: Any, searches: _Searches):
    for gid in searches.open_ids():
        group = store.get_group(gid)
        if not is_queued(group) or group["status"] != "running":
            continue
        meta = group.get("metrics") or {}
        if not searches.usable(gid, meta):
            continue
        phases = searches.phases(group)
        for phase in phases:  # a dead worker's trial must not hold its phase open
            requeue_stale(searches.study(gid, phase))
        if searches.advance(gid) != "open":
            continue
        for phase in phases:
            study = searches.study(gid, phase)
            trial = pop(storage, study)
            if trial is not None:
                return gid, phase, study, trial
    return None


def _finished(store: Store, w: WorkerSpec, searches: _Searches) -> bool:
    """Whether an idle worker stops: its search ended or its time is up (``follow``), or
    nothing is waiting anywhere (``until_empty``)."""
    if w.deadline is not None and time.time() >= w.deadline:
        return True
    if w.follow and w.group:
        group = store.get_group(w.group)
        meta = group.get("metrics") or {}
        over = meta.get("deadline_at") is not None and time.time() >= meta["deadline_at"]
        return group["status"] != "running" or over
    return w.until_empty


def _run_trial(store: Store, searches: _Searches, gid: str, phase: str,
               study: optuna.Study, trial: optuna.Trial,
               report: Callable[..., None]) -> None:
    w = searches.w
    threads = (store.get_group(gid).get("metrics") or {}).get("threads")
    origin = origin_of(trial)
    name = f"[{phase} #{origin}]"  # the number its runs carry, also on a re-queued copy
    beat = _Beat(searches.storage, trial._trial_id,
                 lambda: report("running", f"{phase} #{origin}"))
    _CURRENT[:] = [beat]
    try:
        trial.set_user_attr("worker", {"host": host_name(), "pid": os.getpid()})
        report("running", f"{phase} #{origin}")
        with beat:
            try:
                value = searches.execute(gid, phase, trial, threads)
            finally:
                beat.armed = False
        outcome = ("value", value)
    except optuna.TrialPruned as why:
        outcome = ("pruned", why)
    except Repeated as same:
        outcome = ("repeated", same)
    except Abandoned:
        outcome = ("abandoned", None)
    except (KeyboardInterrupt, Stopped, DiskFull):
        # Back in the queue now, for any worker (its runs are stopped, resumable); a second
        # Ctrl-C or SIGTERM must not cut this short.
        with _signals_ignored():
            requeue(searches.storage, study, searches.storage.get_trial(trial._trial_id),
                    "stopped")
            report("stopped")
        _say(w.quiet, f"{name} {trial.user_attrs.get('label')}: stopped; put back in the queue")
        raise
    except Exception as err:  # one broken configuration must not end the search
        if is_disconnect(err):
            raise  # not the configuration's fault: the loop waits for the store
        msg = str(err) if isinstance(err, ConvbenchError) else f"{type(err).__name__}: {err}"
        outcome = ("failed", msg)
    finally:
        _CURRENT.clear()
    label = trial.user_attrs.get("label")
    if outcome[0] != "abandoned" and not beat.lost:
        try:
            _tell(study, trial, outcome, phase)
        except UpdateFinishedTrialError:
            outcome = ("abandoned", None)
    if outcome[0] == "abandoned" or beat.lost:
        _say(w.quiet, f"{name} {label}: re-queued by another worker while this one was cut "
                      f"off (no heartbeat for {GRACE_S} s); abandoned it here")
    else:
        _say(w.quiet, f"{name} {label}: {_outcome_text(outcome, phase)}")
    report("idle")


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: tuple, phase: str) -> None:
    kind, value = outcome
    if kind == "value":
        study.tell(trial, value)
    elif kind == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    elif kind == "repeated":
        study.tell(trial, value.value)
    else:
        trial.set_user_attr("error", value)
        study.tell(trial, state=TrialState.FAIL)


def _outcome_text(outcome: tuple, phase: str) -> str:
    kind, value = outcome
    if kind == "value":
        return f"{'early' if phase == 'screen' else 'val'} {value:.4f}"
    if kind == "failed":
        return f"failed: {value}"
    return str(value)
