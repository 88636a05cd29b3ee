"""Run a search: fill the phase queues, let worker processes drain them, resume after a kill.

A search is a group (kind ``search``) in the run store plus up to three Optuna studies in the
same database: ``screen`` (range tests), ``train`` (full training, with the pruner) and
``audit`` (full training of what was discarded, to measure the heuristic). Every strategy is
the same mechanism with different queue contents, drained by workers (:mod:`.worker`: local
processes of ``--workers N`` or ``convbench worker`` on other machines) that also move the
search to its next phase (:func:`advance`):

* ``grid`` — every combination queued in ``train``;
* ``random`` / ``tpe`` — ``search.trials`` empty slots queued in ``train``; the sampler fills
  each when it starts (TPE then learns from the trials finished so far);
* ``screen`` — every combination queued in ``screen``; when all are screened the discard
  rule runs per group and the survivors are queued in ``train`` with their own bounds;
* pruner ``screen`` — each ``train`` trial screens itself first and is discarded online
  against the trials screened so far.

>>> result = search("examples/digits-screen-search.yaml", workers=2)      # doctest: +SKIP
>>> result["winner"]["label"]                                              # doctest: +SKIP
'blocks=2 base_filters=8 optim=adam lr_range=1e-3–0.1'
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import ConvbenchError, StoreError
from ..results import Group, load_group
from ..store import Store
from ..training.device import available_cores
from ..training.engine import prepare_config
from ..training.lifecycle import Stopped, stop_on_signals
from . import space as sp
from .rules import more_seeds, verdict
from .samplers import DEFAULT_TRIALS, make_pruner, make_sampler
from .storage import (
    PHASES,
    enqueue,
    get_study,
    open_storage,
    orphaned,
    queued_keys,
    requeue_orphans,
    require_shared_store,
    trials,
    waiting,
)
from .summary import collect
from .trials import bounds_of
from .worker import QueuedKind, WorkerSpec, host_name, is_queued
from .worker import loop as worker_loop

__all__ = ["SearchError", "advance", "make_pruner", "make_sampler", "run_local", "search",
           "stop_local", "work"]


class SearchError(ConvbenchError):
    """A search that cannot start or continue (bad id, crashed worker)."""


# ----- local workers -------------------------------------------------------------------------

def _die_with_parent(parent: int) -> None:
    """Linux: get SIGTERM when the coordinator dies (even by SIGKILL), so no orphaned worker
    keeps writing while the search is resumed."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def work(spec: WorkerSpec, others: dict[str, QueuedKind] | None = None) -> int:
    """One worker (:mod:`.worker`) with this module's phase rules (and ``others``: queued
    comparisons, for ``convbench worker``); returns the trials it ran. ``convbench worker``
    and each local process of ``--workers N`` call this."""
    return worker_loop(spec, advance, others)


def _local_worker(spec: WorkerSpec, parent: int,
                  others: dict[str, QueuedKind] | None) -> None:
    """A spawned local worker. Ctrl-C reaches the coordinator, which stops its workers with
    SIGTERM: each puts its trial back in the queue and exits quietly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    try:
        with stop_on_signals():
            work(spec, others)
    except (KeyboardInterrupt, Stopped):
        sys.exit(128 + signal.SIGTERM)


def run_local(spec: WorkerSpec, n: int, others: dict[str, QueuedKind] | None = None
              ) -> list[str]:
    """``n`` local workers on the search, or on the queued comparison whose kind ``others``
    maps (in this process when ``n`` is 1); the failures of those that crashed."""
    if n == 1:
        # seeded like the first of N: the same draws each time
        work(replace(spec, index=0), others)
        return []
    context = mp.get_context("spawn")
    procs = [context.Process(target=_local_worker,
                             args=(replace(spec, index=i), os.getpid(), others),
                             name=f"convbench-worker-{i}") for i in range(n)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return [f"{p.name} exited with status {p.exitcode}" for p in procs if p.exitcode]


def stop_local(timeout: float = 60.0) -> None:
    """SIGTERM to the local workers (each re-queues its trial), then wait for them."""
    children = mp.active_children()
    for child in children:
        child.terminate()
    deadline = time.time() + timeout
    for child in children:
        child.join(max(0.1, deadline - time.time()))
        if child.is_alive():
            child.kill()
            child.join()


# ----- queues --------------------------------------------------------------------------------

def fill_points(study: optuna.Study, points: list[dict],
                attrs: dict[str, dict] | None = None) -> int:
    """Queue the points not yet in the study (by key); returns how many were added."""
    have = queued_keys(study)
    added = 0
    for point in points:
        key = sp.key_of(point)
        if key not in have:
            enqueue(study, sp.encoded(point), {"key": key, **((attrs or {}).get(key) or {})})
            added += 1
    return added


def fill_slots(study: optuna.Study, n: int) -> int:
    """Queue empty slots up to ``n`` trials (orphans re-queued do not count twice)."""
    have = [t for t in trials(study) if not orphaned(t)]
    for _ in range(max(0, n - len(have))):
        enqueue(study, {}, {"slot": True})
    return max(0, n - len(have))


def screened(screen_study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The finished screening of each configuration: its latest round (adaptive seeds add
    rounds with more seeds), orphans left out."""
    latest: dict[str, optuna.trial.FrozenTrial] = {}
    for t in trials(screen_study, (TrialState.COMPLETE,)):
        if t.user_attrs.get("orphaned"):
            continue
        old = latest.get(t.user_attrs["key"])
        if old is None or t.user_attrs.get("round", 1) >= old.user_attrs.get("round", 1):
            latest[t.user_attrs["key"]] = t
    return sorted(latest.values(), key=lambda t: t.number)


def _groups(done: list[optuna.trial.FrozenTrial]) -> dict[str, list[float | None]]:
    groups: dict[str, list[float | None]] = {}
    for t in done:
        groups.setdefault(t.user_attrs["group"], []).append(t.user_attrs.get("early"))
    return groups


def decide(spec: sp.SearchSpec, screen_study: optuna.Study) -> dict[str, dict]:
    """The batch discard rule over all screened configurations, per group (a decisive early
    stop of a range test decides its configuration first)."""
    done = screened(screen_study)
    groups = _groups(done)
    out = {}
    for t in done:
        a = t.user_attrs
        found = verdict(a.get("early"), a["chance"], groups[a["group"]], spec.screen,
                        a.get("early_stop"))
        stopped = [x for x in a.get("early_stops") or [] if x != a.get("early_stop")]
        if found and stopped:  # a test that ended early without deciding: say when and why
            found = (found[0], found[1] + "; its range test stopped early ("
                     + ", ".join(f"{x['rule']} at {x['fraction']:.0%}" for x in stopped) + ")")
        out[a["key"]] = {"kept": found is None, "reason": found and found[1],
                         "rule": found and found[0], "point": a["point"],
                         "bounds": bounds_of(a), "early": a.get("early"), "group": a["group"],
                         "early_stop": a.get("early_stop"), "seeds": a.get("seeds_run")}
    return out


def reseed(spec: sp.SearchSpec, screen_study: optuna.Study) -> int:
    """Adaptive seeds: queue another screening round, with more seeds, for every
    configuration whose verdict is near a rule's threshold (:func:`rules.more_seeds`).
    Returns how many were queued (0: every verdict is clear)."""
    done = screened(screen_study)
    groups = _groups(done)
    have = {(t.user_attrs.get("key"), t.user_attrs.get("round", 1)) for t in trials(screen_study)
            if not t.user_attrs.get("orphaned")}
    added = 0
    for t in done:
        a = t.user_attrs
        if a.get("early_stop"):  # decided by its early stop
            continue
        seeds = more_seeds(a.get("early_stats") or {}, a["chance"], groups[a["group"]],
                           spec.screen)
        key, round_ = a["key"], a.get("round", 1) + 1
        if seeds and (key, round_) not in have:
            enqueue(screen_study, sp.encoded(a["point"]),
                    {"key": key, "round": round_, "seeds": seeds,
                     "origin": a.get("origin", t.number)})
            added += 1
    return added


def audit_candidates(spec: sp.SearchSpec, studies: dict[str, optuna.Study],
                     decisions: dict[str, dict], sample: int | None, seed: int) -> list[dict]:
    """Discarded (screen) or pruned configurations (also survivors of a screen that
    successive halving pruned), all or a seeded sample."""
    cands = [{"point": d["point"], "key": k, "lr_bounds": d["bounds"]}
             for k, d in sorted(decisions.items()) if not d["kept"]]
    for t in trials(studies["train"], (TrialState.PRUNED,)):
        a = t.user_attrs
        item = {"point": a["point"], "key": a["key"]}
        if "lr_lower" in a:  # screened online: train between its own bounds
            item["lr_bounds"] = bounds_of(a)
        elif a.get("lr_bounds"):  # a screen's survivor: between the bounds it was given
            item["lr_bounds"] = a["lr_bounds"]
        cands.append(item)
    cands.sort(key=lambda c: c["key"])
    if sample is not None and sample < len(cands):
        cands = sorted(random.Random(seed).sample(cands, sample), key=lambda c: c["key"])
    return cands


# ----- the search ----------------------------------------------------------------------------

def find_search(store: Store, ident: str, option: str = "--resume") -> dict:
    """The search group whose id starts with ``ident`` (or whose name is ``ident``);
    ``option`` names where it was given, for the message when none (or several) match."""
    groups = store.list_groups(kind="search")
    hits = [g for g in groups if g["id"] == ident] or \
        [g for g in groups if g["id"].startswith(ident)] or \
        [g for g in groups if g.get("name") == ident][:1]
    if len(hits) != 1:
        what = "is ambiguous" if hits else "matches no search"
        raise StoreError(f"{option} {ident!r} {what} in {store!r}. "
                         "`convbench search --list` shows searches.")
    return hits[0]


def find_work(store: Store, ident: str) -> dict:
    """The search or queued comparison (``convbench compare --workers 0``) that ``ident``
    names, for ``convbench worker --group``."""
    try:
        return find_search(store, ident, option="--group")
    except StoreError as no_search:
        queued = [g for g in store.list_groups() if g["kind"] != "search" and is_queued(g)
                  and (g["id"].startswith(ident) or g.get("name") == ident)]
        if len(queued) != 1:
            raise StoreError(str(no_search).replace(
                "matches no search", "matches no search or queued comparison")) from None
        return queued[0]


def _load_spec(space: Any, overrides: list[str] | None) -> sp.SearchSpec:
    if isinstance(space, sp.SearchSpec):
        return space
    if isinstance(space, dict):
        return sp.parse(sp.override(space, overrides))
    if space is None:
        raise SearchError("Give a search-space YAML (see docs/search.md) or --resume ID.")
    return sp.load(space, overrides)


def _check_names(spec: sp.SearchSpec) -> None:
    """Unknown model, optimiser or schedule names fail before any training starts: every
    choice (and both ends of every range) on its own, and every grid point as a whole."""
    points: list[dict] = [{}]
    for p in sp.params_of(spec):
        points += [{p.name: v} for v in (p.choices if p.is_choice else [p.low, p.high])]
    if spec.search.strategy in ("grid", "screen"):
        points += sp.grid(spec)
    for point in points:
        prepare_config(sp.run_config(spec, point))


def _check_options(workers: int, audit_sample: int | None, time_budget_s: float | None) -> None:
    if workers < 0:
        raise SearchError(f"--workers {workers}: give 1 or more local workers, or 0 to only "
                          "queue the trials for `convbench worker`.")
    if audit_sample is not None and audit_sample < 1:
        raise SearchError(f"--audit-sample {audit_sample}: give a number of configurations "
                          "(1 or more), or leave it out to audit every discarded one.")
    if time_budget_s is not None and time_budget_s <= 0:
        raise SearchError(f"--time-budget {time_budget_s:g}: give seconds above 0, or leave it "
                          "out for no time limit.")


def artifacts_marker(store: Store, gid: str, create: bool) -> dict[str, Any]:
    """A small file in the artifacts folder naming the group (a search or a queued
    comparison): a worker whose ``--artifacts`` lacks it does not share this folder (other
    machine, missing mount) and says so."""
    name = f".convbench/search-{gid}"
    if create:
        store.artifacts.write_text(name, f"{host_name()}:{store.artifacts.location}\n")
    return {"artifacts": store.artifacts.location, "artifacts_marker": name,
            "artifacts_host": host_name()}


def _elapsed(meta: dict) -> float:
    """Wall time of the search: earlier segments plus the one running now."""
    now = time.time() - meta["segment_started"] if meta.get("segment_started") else 0.0
    return float(meta.get("elapsed_s") or 0.0) + now


def search(space: str | Path | dict | sp.SearchSpec | None = None, *,
           store: Store | str | None = None, workers: int = 1, resume: str | None = None,
           audit: bool | None = None, audit_sample: int | None = None,
           time_budget_s: float | None = None, overrides: list[str] | None = None,
           report: str | Path | None = None, quiet: bool = True,
           echo: Callable[[str], None] | None = None,
           on_start: Callable[[str], None] | None = None) -> Group:
    """Run (or with ``resume``, continue) a search; return its :class:`~convbench.results.Group`
    (the stored group with its runs) with the summary's keys (and the summary as ``summary``).

    >>> result = search("examples/digits-screen-search.yaml", store="runs.db")  # doctest: +SKIP
    >>> result["winner"]["label"], len(result.runs) > 0                         # doctest: +SKIP
    ('model=B2FL8 · optim=adam', True)

    ``workers`` local worker processes run the trials (:func:`work`); ``workers=0`` only
    queues them, for ``convbench worker`` processes on any machine (the returned group then
    has ``status`` ``queued`` and ``waiting``, the trials queued). The summary has ``rows``
    (one per configuration: status, early and final scores, bounds, runs), ``winner`` (its
    config as YAML, test accuracy), ``audit`` (rank correlations, regret), ``compute`` (used
    against exhaustive full training) and ``importance``. ``on_start(group_id)`` is called
    when its local workers start (from then on SIGTERM stops it resumably; the web app's
    worker names the search with it, for the page's Stop).
    """
    say = echo or (lambda text: None)
    store = store if isinstance(store, Store) else Store(store)
    _check_options(workers, audit_sample, time_budget_s)
    if workers == 0:
        require_shared_store(store, "the trials", SearchError)
    if resume:
        group = find_search(store, resume)
        gid = group["id"]
        spec = sp.parse(group["config"]["spec"], source=f"search {gid}")
        meta = group.get("metrics") or {}
        if meta.get("artifacts_marker") and \
                not store.artifacts.exists(meta["artifacts_marker"]):
            raise SearchError(f"Search {gid} keeps its checkpoints in {meta['artifacts']} (on "
                              f"{meta.get('artifacts_host')}); this store's artifacts are "
                              f"{store.artifacts.location}: pass --artifacts with that place.")
        say(f"resuming search {gid}")
    else:
        spec = _load_spec(space, overrides)
        _check_names(spec)
        gid = store.create_group(kind="search", name=spec.name,
                                 config={"spec": spec.model_dump(mode="json")})
        meta = {}
        say(f"search {gid}: strategy {spec.search.strategy}, pruner {spec.search.pruner.name}")
    audit_on = audit if audit is not None else bool(meta.get("audit") or spec.audit.enabled)
    sample = audit_sample or meta.get("audit_sample") or spec.audit.sample
    used = float(meta.get("elapsed_s") or 0.0)
    if time_budget_s:  # given now: this much more time, from now
        budget, deadline = used + time_budget_s, time.time() + time_budget_s
    else:  # the stored budget: what is left of it
        budget = meta.get("time_budget_s") or spec.search.time_budget_s
        deadline = time.time() + max(0.0, budget - used) if budget else None
    # Threads per run are fixed when the search starts: a resume with another --workers
    # would otherwise time its trainings under other conditions than the first start's, and
    # the compute compared (and the winner's YAML) would not match.
    threads = meta["threads"] if "threads" in meta else \
        (max(1, available_cores() // workers) if workers > 1 else None)
    store.update_group(gid, status="running", metrics={
        "audit": audit_on, "audit_sample": sample, "time_budget_s": budget, "workers": workers,
        "threads": threads, "elapsed_s": used, "segment_started": time.time(),
        "deadline_at": deadline, **artifacts_marker(store, gid, create=not resume)})
    storage = open_storage(store)
    if store.is_sqlite:
        # One machine and no worker running: every RUNNING trial is a killed worker's.
        # (PostgreSQL: remote workers may be alive; the heartbeat finds the dead ones.)
        requeued = sum(requeue_orphans(storage, get_study(storage, gid, phase))
                       for phase in PHASES)
        if requeued:
            say(f"re-queued {requeued} trial(s) a killed worker had left unfinished")
    if advance(store, storage, gid) == "open":
        if workers == 0:
            queued = sum(waiting(get_study(storage, gid, p)) for p in PHASES)
            return Group({**load_group(store, gid), "status": "queued", "waiting": queued})
        say(f"{workers} worker(s) on {queued_text(storage, gid)}")
        local = WorkerSpec(store.url, store.artifacts.location, group=gid, follow=True,
                           deadline=deadline, quiet=quiet)
        try:
            with stop_on_signals():
                if on_start is not None:  # from here on a SIGTERM leaves it stopped
                    on_start(gid)
                errors = run_local(local, workers)
        except (KeyboardInterrupt, Stopped) as stop:
            stop_local()  # each worker puts its trial back; its run stays resumable
            meta = store.get_group(gid)["metrics"]
            store.update_group(gid, status="stopped",
                               metrics={"elapsed_s": _elapsed(meta), "segment_started": None})
            stop.group_id = gid  # the CLI names it in its "continue with --resume" line
            raise
        group = store.get_group(gid)
        if group["status"] == "running":
            if deadline is not None and time.time() >= deadline:
                finish(store, storage, spec, gid, "stopped")
            else:
                raise SearchError(f"{len(errors)} search worker(s) of {gid} failed "
                                  f"({(errors or ['no trial left to run'])[0]}); continue "
                                  f"with `convbench search --resume {gid}`.")
    summary = store.get_group(gid)["metrics"]["summary"]
    if report:
        from .report import write_search_report
        summary["report"] = {k: str(v) for k, v in
                             write_search_report(summary, store, report).items()}
    # The search's group with its runs, the summary's keys on top (``summary`` alone is what
    # the command prints and stores).
    return Group({**load_group(store, gid), **summary, "summary": summary})


def queued_text(storage: Any, gid: str) -> str:
    """``"3 screen, 0 train, 0 audit trial(s) queued"``."""
    counts = ", ".join(f"{waiting(get_study(storage, gid, p))} {p}" for p in PHASES)
    return f"{counts} trial(s) queued"


# ----- phases, advanced by whichever worker finds one finished -------------------------------

def _phases(spec: sp.SearchSpec, audit_on: bool) -> list[str]:
    first = ["screen", "train"] if spec.search.strategy == "screen" else ["train"]
    return first + (["audit"] if audit_on else [])


def advance(store: Store, storage: Any, gid: str) -> str:
    """Queue the search's next phase when the one before has finished, and write the summary
    when every phase has: ``"open"`` while work is waiting or running, else the search's
    status. Runs under the search's lock (any worker on any machine may call it); queueing
    is idempotent (by configuration key), so a crash halfway is finished by the next call.
    """
    with store.exclusive(f"search-{gid}"):
        group = store.get_group(gid)
        if group["status"] != "running":
            return group["status"]
        meta = group.get("metrics") or {}
        spec = sp.parse(group["config"]["spec"], source=f"search {gid}")
        studies = {phase: get_study(storage, gid, phase) for phase in PHASES}
        filled = list(meta.get("filled") or [])
        for phase in _phases(spec, bool(meta.get("audit"))):
            if phase not in filled:
                _fill(spec, store, gid, phase, studies, meta)
                filled.append(phase)
                store.update_group(gid, metrics={"filled": filled})
                meta = store.get_group(gid).get("metrics") or {}
            if waiting(studies[phase]) or trials(studies[phase], (TrialState.RUNNING,)):
                return "open"
            # Adaptive seeds: another screening round where a verdict is close (idempotent,
            # so whichever worker finds the round finished queues the next one).
            if (phase == "screen" and spec.screen.adaptive_seeds
                    and reseed(spec, studies["screen"])):
                return "open"
        return finish(store, storage, spec, gid, "completed")


def _fill(spec: sp.SearchSpec, store: Store, gid: str, phase: str, studies: dict,
          meta: dict) -> None:
    if phase == "screen":
        fill_points(studies["screen"], sp.grid(spec))
    elif phase == "train" and spec.search.strategy == "screen":
        decisions = decide(spec, studies["screen"])
        store.update_group(gid, metrics={"decisions": decisions})
        kept = {k: {"lr_bounds": d["bounds"], "early": d["early"], "group": d["group"]}
                for k, d in decisions.items() if d["kept"]}
        # Best early score first: successive halving then compares later survivors against
        # the likeliest winners (and a full training order costs the same).
        order = sorted((d for d in decisions.values() if d["kept"]),
                       key=lambda d: -(d["early"] or 0.0))
        fill_points(studies["train"], [d["point"] for d in order], kept)
    elif phase == "train" and spec.search.strategy == "grid":
        fill_points(studies["train"], sp.grid(spec))
    elif phase == "train":
        fill_slots(studies["train"], spec.search.trials or DEFAULT_TRIALS)
    else:
        cands = audit_candidates(spec, studies, meta.get("decisions") or {},
                                 meta.get("audit_sample"), spec.audit.seed)
        attrs = {c["key"]: {"lr_bounds": c["lr_bounds"]} for c in cands if "lr_bounds" in c}
        fill_points(studies["audit"], [c["point"] for c in cands], attrs)


def finish(store: Store, storage: Any, spec: sp.SearchSpec, gid: str, status: str) -> str:
    """Write the search's summary and final status (``completed``, ``stopped`` at the end of
    its time budget, or ``failed`` when every trial failed); returns the status."""
    meta = store.get_group(gid).get("metrics") or {}
    store.update_group(gid, metrics={"elapsed_s": _elapsed(meta), "segment_started": None})
    summary = collect(store, storage, spec, gid)
    budget = meta.get("time_budget_s")
    if status == "stopped" and budget:
        summary["stopped_reason"] = (f"time budget of {budget:g} s used; continue with "
                                     f"`convbench search --resume {gid} --time-budget S`")
    elif summary["rows"] and all(r["status"].startswith("failed") for r in summary["rows"]):
        status = "failed"
    summary["status"] = status
    store.update_group(gid, status=status, metrics={"summary": summary}, replace=("summary",))
    return status
