"""Run a search: fill the phase queues, let worker processes drain them, resume after a kill.

A search is a group (kind ``search``) in the run store plus up to three Optuna studies in the
same database: ``screen`` (range tests), ``train`` (full training, with the pruner) and
``audit`` (full training of what was discarded, to measure the heuristic). Every strategy is
the same mechanism with different queue contents:

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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import ConvbenchError, StoreError
from ..results import Group, load_group
from ..store import Store
from ..training.device import available_cores
from ..training.engine import prepare_config
from ..training.lifecycle import Stopped
from . import space as sp
from .rules import more_seeds, verdict
from .storage import (
    PHASES,
    enqueue,
    get_study,
    open_storage,
    pop,
    queued_keys,
    requeue_orphans,
    trials,
    waiting,
)
from .summary import collect
from .trials import Context, Repeated, bounds_of, execute

DEFAULT_TRIALS = 20


class SearchError(ConvbenchError):
    """A search that cannot start or continue (bad id, crashed worker)."""


# ----- samplers and pruners ------------------------------------------------------------------

def make_sampler(spec: sp.SearchSpec, phase: str, salt: int, workers: int):
    """The phase's sampler. Only ``train`` of random/tpe samples; the others run fixed points.
    ``salt`` differs per worker and per start, so resumed or parallel workers do not replay
    each other's random draws."""
    seed = spec.search.sampler_seed + 7919 * salt
    if phase == "train" and spec.search.strategy == "tpe":
        n = spec.search.trials or DEFAULT_TRIALS
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, n // 3)),
                                          constant_liar=workers > 1)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(spec: sp.SearchSpec, phase: str):
    """The Optuna pruner of the ``train`` phase (``median`` = percentile 50)."""
    p = spec.search.pruner
    if phase == "train" and spec.search.strategy == "screen" and spec.prunes_training:
        # The screen's survivors trained by successive halving (ASHA on the survivors).
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.screen.halving_min_epochs,
            reduction_factor=spec.screen.halving_factor)
    if phase != "train" or p.name in ("none", "screen"):
        return optuna.pruners.NopPruner()
    if p.name in ("median", "percentile"):
        return optuna.pruners.PercentilePruner(50.0 if p.name == "median" else p.percentile,
                                               n_startup_trials=p.startup_trials,
                                               n_warmup_steps=p.warmup_epochs)
    if p.name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource,
                                                      reduction_factor=p.reduction_factor)
    return optuna.pruners.HyperbandPruner(min_resource=p.min_resource,
                                          max_resource=max(p.min_resource, spec.full_epochs),
                                          reduction_factor=p.reduction_factor)


# ----- workers -------------------------------------------------------------------------------

def _die_with_parent(parent: int) -> None:
    """Linux: get SIGTERM when the coordinator dies (even by SIGKILL), so no orphaned worker
    keeps writing while the search is resumed."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _raise_stopped(signum, frame) -> None:
    raise Stopped(signal.Signals(signum).name)


_IN_POOL = False  # set in worker processes: a stopped trial must end the process


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def worker(store_url: str, group_id: str, phase: str, deadline: float | None,
           threads: int | None, quiet: bool, index: int, workers: int) -> None:
    """Pop and run the phase's trials until the queue is empty or the deadline passes."""
    store = Store(store_url)
    spec = sp.parse(store.get_group(group_id)["config"]["spec"], source=f"search {group_id}")
    storage = open_storage(store, create=False)
    probe = get_study(storage, group_id, phase)
    # Trials already started or finished, not the queued slots: those are as many at a resume
    # as at the first start, and a salt made from them replayed the first start's draws.
    salt = index + 1 + 1000 * (len(trials(probe)) - waiting(probe))
    study = get_study(storage, group_id, phase, sampler=make_sampler(spec, phase, salt, workers),
                      pruner=make_pruner(spec, phase))
    # Runs train silently (progress bars of parallel runs would garble); `quiet` is for the
    # one line per finished trial.
    ctx = Context(store, spec, group_id, phase, threads, quiet=True)
    while deadline is None or time.time() < deadline:
        trial = pop(storage, study)
        if trial is None:
            return
        try:
            value = execute(ctx, trial)
        except optuna.TrialPruned as why:
            study.tell(trial, state=TrialState.PRUNED)
            _say(quiet, f"[{phase} #{trial.number}] {trial.user_attrs.get('label')}: {why}")
        except Repeated as same:
            study.tell(trial, same.value)
            _say(quiet, f"[{phase} #{trial.number}] {trial.user_attrs.get('label')}: {same}")
        except (KeyboardInterrupt, Stopped):
            # The run is marked stopped and the trial stays RUNNING: `--resume` re-queues it.
            if _IN_POOL:  # the pool would catch the exception and keep the process waiting
                os._exit(128 + signal.SIGTERM)
            raise
        except Exception as err:  # one broken configuration must not end the search
            msg = str(err) if isinstance(err, ConvbenchError) else f"{type(err).__name__}: {err}"
            trial.set_user_attr("error", msg)
            study.tell(trial, state=TrialState.FAIL)
            _say(quiet, f"[{phase} #{trial.number}] {trial.user_attrs.get('label')}: failed: {msg}")
        else:
            study.tell(trial, value)
            _say(quiet, f"[{phase} #{trial.number}] {trial.user_attrs.get('label')}: "
                        f"{'early' if phase == 'screen' else 'val'} {value:.4f}")


def _child_init(parent: int) -> None:
    global _IN_POOL
    _IN_POOL = True
    _die_with_parent(parent)
    signal.signal(signal.SIGTERM, _raise_stopped)


def make_pool(workers: int) -> ProcessPoolExecutor | None:
    """Worker processes kept for the whole search (each pays torch's import once)."""
    if workers <= 1:
        return None
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                               initializer=_child_init, initargs=(os.getpid(),))


def run_phase(store: Store, group_id: str, phase: str, *, pool: ProcessPoolExecutor | None,
              workers: int, deadline: float | None, threads: int | None, quiet: bool) -> bool:
    """Drain the phase's queue with up to ``workers`` processes; True when nothing is left."""
    storage = open_storage(store)
    study = get_study(storage, group_id, phase)
    n = min(workers, waiting(study))
    if n == 0:
        return True
    if n == 1 or pool is None:
        worker(store.url, group_id, phase, deadline, threads, quiet, 0, 1)
    else:
        futures = [pool.submit(worker, store.url, group_id, phase, deadline, threads, quiet, i, n)
                   for i in range(n)]
        errors = []
        for future in futures:
            try:
                future.result()
            except Exception as exc:  # a crashed or killed worker process
                errors.append(f"{type(exc).__name__}: {exc}")
        if errors:
            raise SearchError(f"{len(errors)} search worker(s) of {group_id} failed "
                              f"({errors[0]}); continue with `convbench search --resume "
                              f"{group_id}`.")
    return waiting(study) == 0 and not trials(study, (TrialState.RUNNING,))


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
    have = [t for t in trials(study) if not t.user_attrs.get("orphaned")]
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

def find_search(store: Store, ident: str) -> dict:
    """The search group whose id starts with ``ident`` (or whose name is ``ident``)."""
    groups = store.list_groups(kind="search")
    hits = [g for g in groups if g["id"] == ident] or \
        [g for g in groups if g["id"].startswith(ident)] or \
        [g for g in groups if g.get("name") == ident][:1]
    if len(hits) != 1:
        what = "is ambiguous" if hits else "matches no search"
        raise StoreError(f"--resume {ident!r} {what} in {store!r}. "
                         "`convbench search --list` shows searches.")
    return hits[0]


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
    if workers < 1:
        raise SearchError("--workers must be at least 1.")
    if audit_sample is not None and audit_sample < 1:
        raise SearchError(f"--audit-sample {audit_sample}: give a number of configurations "
                          "(1 or more), or leave it out to audit every discarded one.")
    if time_budget_s is not None and time_budget_s <= 0:
        raise SearchError(f"--time-budget {time_budget_s:g}: give seconds above 0, or leave it "
                          "out for no time limit.")


def search(space: str | Path | dict | sp.SearchSpec | None = None, *,
           store: Store | str | None = None, workers: int = 1, resume: str | None = None,
           audit: bool | None = None, audit_sample: int | None = None,
           time_budget_s: float | None = None, overrides: list[str] | None = None,
           report: str | Path | None = None, quiet: bool = True,
           echo: Callable[[str], None] | None = None) -> Group:
    """Run (or with ``resume``, continue) a search; return its :class:`~convbench.results.Group`
    (the stored group with its runs) with the summary's keys (and the summary as ``summary``).

    >>> result = search("examples/digits-screen-search.yaml", store="runs.db")  # doctest: +SKIP
    >>> result["winner"]["label"], len(result.runs) > 0                         # doctest: +SKIP
    ('model=B2FL8 · optim=adam', True)

    The summary has ``rows`` (one per configuration: status, early and final scores, bounds,
    runs), ``winner`` (its config as YAML, test accuracy), ``audit`` (rank correlations,
    regret), ``compute`` (used against exhaustive full training) and ``importance``.
    """
    say = echo or (lambda text: None)
    store = store if isinstance(store, Store) else Store(store)
    _check_options(workers, audit_sample, time_budget_s)
    if resume:
        group = find_search(store, resume)
        gid = group["id"]
        spec = sp.parse(group["config"]["spec"], source=f"search {gid}")
        meta = group.get("metrics") or {}
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
        "threads": threads})
    storage = open_storage(store)
    studies = {phase: get_study(storage, gid, phase) for phase in PHASES}
    requeued = sum(requeue_orphans(storage, s) for s in studies.values())
    if requeued:
        say(f"re-queued {requeued} trial(s) a killed worker had left unfinished")
    started = time.time()

    pool = make_pool(workers)

    def phase(name: str) -> bool:
        say(f"phase {name}: {waiting(studies[name])} trial(s) queued")
        return run_phase(store, gid, name, pool=pool, workers=workers, deadline=deadline,
                         threads=threads, quiet=quiet)

    try:
        status = _run_phases(spec, store, gid, studies, phase, audit_on, sample)
    except (KeyboardInterrupt, Stopped):
        for child in mp.active_children():  # the pool's workers: stop them, runs stay resumable
            child.terminate()
        store.update_group(gid, status="stopped",
                           metrics={"elapsed_s": used + time.time() - started})
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    store.update_group(gid, metrics={"elapsed_s": used + time.time() - started})
    summary = collect(store, storage, spec, gid)
    if status == "stopped" and budget:
        summary["stopped_reason"] = (f"time budget of {budget:g} s used; continue with "
                                     f"`convbench search --resume {gid} --time-budget S`")
    elif summary["rows"] and all(r["status"].startswith("failed") for r in summary["rows"]):
        status = "failed"
    summary["status"] = status
    store.update_group(gid, status=status, metrics={"summary": summary})
    if report:
        from .report import write_search_report
        summary["report"] = {k: str(v) for k, v in
                             write_search_report(summary, store, report).items()}
    # The search's group with its runs, the summary's keys on top (``summary`` alone is what
    # the command prints and stores).
    return Group({**load_group(store, gid), **summary, "summary": summary})


def _run_phases(spec: sp.SearchSpec, store: Store, gid: str, studies: dict,
                phase: Callable[[str], bool], audit_on: bool, sample: int | None) -> str:
    decisions: dict[str, dict] = {}
    if spec.search.strategy == "screen":
        fill_points(studies["screen"], sp.grid(spec))
        if not phase("screen"):
            return "stopped"
        while spec.screen.adaptive_seeds and reseed(spec, studies["screen"]):
            if not phase("screen"):
                return "stopped"
        decisions = decide(spec, studies["screen"])
        store.update_group(gid, metrics={"decisions": decisions})
        kept = {k: {"lr_bounds": d["bounds"], "early": d["early"], "group": d["group"]}
                for k, d in decisions.items() if d["kept"]}
        # Best early score first: successive halving then compares later survivors against
        # the likeliest winners (and a full training order costs the same).
        order = sorted((d for d in decisions.values() if d["kept"]),
                       key=lambda d: -(d["early"] or 0.0))
        fill_points(studies["train"], [d["point"] for d in order], kept)
    elif spec.search.strategy == "grid":
        fill_points(studies["train"], sp.grid(spec))
    else:
        fill_slots(studies["train"], spec.search.trials or DEFAULT_TRIALS)
    if not phase("train"):
        return "stopped"
    if audit_on:
        cands = audit_candidates(spec, studies, decisions, sample, spec.audit.seed)
        attrs = {c["key"]: {"lr_bounds": c["lr_bounds"]} for c in cands if "lr_bounds" in c}
        fill_points(studies["audit"], [c["point"] for c in cands], attrs)
        if not phase("audit"):
            return "stopped"
    return "completed"
