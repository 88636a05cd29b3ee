"""One comparison: a base config × variants × seeds, trained as one store group, reported.

A variant is a list of ``key=value`` overrides (the ``--set`` syntax); a plain name is
shorthand for the model override of the run kind (``model.name=`` for classification,
``model.backbone=`` for detection). ``models=`` crosses model names with the variants. The
run kind — classification (``convbench train``) or detection (``convbench detect train``) —
follows from the base config (or ``kind=``) and picks the run function from
:data:`RUN_KINDS`; both kinds get seeds, parallel workers and the same fail-fast checks.

>>> from convbench.compare import compare
>>> group = compare({"data": {"dataset": "digits"}, "train": {"epochs": 2}},
...                 [["optim.name=adam"], ["optim.name=sgd"]], models=["B2FL8"],
...                 seeds=[0, 1], report="out/report.html")            # doctest: +SKIP
>>> len(group.runs), group.kind                                          # doctest: +SKIP
(4, 'compare')
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as cfgmod
from .errors import ConfigError, ConvbenchError
from .registry import Registry
from .results import Group, in_planned_order, load_group
from .store import Store
from .training.device import available_cores

DataIssues = Callable[[list[str]], None]


@dataclass(frozen=True)
class RunKind:
    """What a comparison needs to know about one kind of run."""

    group_kind: str      # the store group's kind (stored stores rely on these names)
    model_key: str       # the override a plain name stands for
    build: Callable[[Any], Any]                  # base (config, dict, YAML path) → config
    override: Callable[[Any, list[str]], Any]    # config + ``key=value`` list → config
    check: Callable[[Any], None]  # one variant, before any training: names, data
    run: Callable[[dict, Store, bool, str, DataIssues | None], Any]  # train one; a Run
    # (base config's name, variant label, seed, several seeds?) → the run's name
    run_name: Callable[[str | None, str, int, bool], str]


RUN_KINDS: Registry[Callable[[], RunKind]] = Registry("run kind")


@RUN_KINDS.register("train")
def _classification() -> RunKind:
    from .data import check_available
    from .training import prepare_config, train

    def build(base: Any) -> cfgmod.RunConfig:
        if isinstance(base, str | Path):
            return cfgmod.load(base)
        return base if isinstance(base, cfgmod.RunConfig) else cfgmod.build(base)

    def check(cfg: cfgmod.RunConfig) -> None:
        prepare_config(cfg)  # unknown model, optimiser or schedule names
        check_available(cfg.data)

    def run(cfg_json: dict, store: Store, quiet: bool, group_id: str,
            on_data_issues: DataIssues | None) -> Any:
        # Classification data notes go to the run's own log, not to a callback.
        return train(cfg_json, store=store, quiet=quiet, group_id=group_id)

    def run_name(base: str | None, label: str, seed: int, several: bool) -> str:
        return f"{base + '-' if base else ''}{label}-s{seed}"

    return RunKind("compare", "model.name", build, cfgmod.apply_overrides, check, run,
                   run_name)


@RUN_KINDS.register("detect")
def _detection() -> RunKind:
    from .detection.backbones import check_backbone
    from .detection.config import apply_overrides
    from .detection.data import load_dataset
    from .detection.train import prepare, train_detector

    def check(cfg: Any) -> None:
        check_backbone(cfg.model.backbone)
        data = cfg.data
        if data.source != "synth" and not (data.path and Path(data.path).exists()):
            load_dataset(data)  # finds nothing either, and says what to do

    def run(cfg_json: dict, store: Store, quiet: bool, group_id: str,
            on_data_issues: DataIssues | None) -> Any:
        return train_detector(cfg_json, store=store, quiet=quiet, group_id=group_id,
                              on_data_issues=on_data_issues)

    def run_name(base: str | None, label: str, seed: int, several: bool) -> str:
        # The label alone, as detection comparisons always named their runs (the base's name
        # is the file's single run); the seed only when there are several.
        return f"{label}-s{seed}" if several else label

    return RunKind("detect-compare", "model.backbone", prepare, apply_overrides, check, run,
                   run_name)


def parse_variant(text: str) -> list[str]:
    """One ``--variant`` value as overrides: ``key=value`` items separated by spaces or ``;``
    (values hold no spaces; commas stay inside a value, as in lists).

    >>> parse_variant("optim.name=sgd; optim.lr=0.01 train.epochs=3")
    ['optim.name=sgd', 'optim.lr=0.01', 'train.epochs=3']
    """
    items = [t for t in re.split(r"[;\s]+", text) if t]
    bad = [t for t in items if "=" not in t]
    if not items or bad:
        raise ConfigError(f"--variant {text!r}: expected key=value overrides separated by "
                          "spaces or ';', e.g. --variant 'optim.name=sgd optim.lr=0.01'.")
    return items


def variant_label(sets: list[str], model_key: str = "model.backbone") -> str:
    """A short, readable label from overrides: the model's value first, then ``key=value``
    with the key's last part (a section's ``name`` is called by the section).

    >>> variant_label(["model.backbone=vovnet39", "train.batch_size=4"])
    'vovnet39 batch_size=4'
    >>> variant_label(["model.name=B2FL8", "optim.name=adam"], "model.name")
    'B2FL8 optim=adam'
    """
    parts = []
    for item in sets:
        key, _, value = (s.strip() for s in item.partition("="))
        if key == model_key:
            parts.append(value)
            continue
        path = key.split(".")
        short = path[-2] if path[-1] == "name" and len(path) > 1 else path[-1]
        parts.append(f"{short}={value}")
    return " ".join(parts) or "base"


def _variant_sets(variants: list[str | list[str]] | None, models: list[str] | None,
                  model_key: str) -> list[list[str]]:
    """Model names × variants, each a list of overrides (a plain name: the model override)."""
    sets = [[f"{model_key}={v}"] if isinstance(v, str) else list(v) for v in variants or []]
    if not models:
        return sets
    return [[f"{model_key}={m}", *extra] for m in models for extra in sets or [[]]]


def _kind_name(base: Any, kind: str | None) -> str:
    if kind is not None:
        return kind
    from .detection.config import DetectConfig  # pydantic only: cheap

    return "detect" if isinstance(base, DetectConfig) else "train"


@dataclass(frozen=True)
class _Job:
    kind: str
    config: dict
    store_url: str
    group_id: str
    quiet: bool


def _run_job(job: _Job, on_data_issues: DataIssues) -> str | None:
    """Train one variant in this process; the error message (None when it worked). Never
    raises for a failed run (it is reported, not fatal)."""
    kind = RUN_KINDS.get(job.kind)()
    try:
        kind.run(job.config, Store(job.store_url), job.quiet, job.group_id, on_data_issues)
        return None
    except ConvbenchError as err:
        return f"{job.config.get('name')}: {err}"
    except Exception as err:  # a crash in one variant must not lose the others
        return f"{job.config.get('name')}: {err.__class__.__name__}: {err}"


def compare(
    base: Any,
    variants: list[str | list[str]] | None = None,
    *,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
    workers: int = 1,
    store: Store | str | None = None,
    name: str | None = None,
    report: str | Path | None = None,
    quiet: bool = True,
    kind: str | None = None,
    on_data_issues: DataIssues | None = None,
) -> Group:
    """Train every variant (× seed) of ``base`` under the same conditions, record them as one
    group, and write the report when ``report`` is given.

    ``base`` is a config, a dict or a YAML path; ``kind`` ("train" or "detect") says which
    kind of run a dict or path holds (a ``DetectConfig`` says it itself). ``workers`` > 1
    queues the runs (as ``workers=0`` does) and drains the queue with that many local worker
    processes of ``convbench worker``'s kind, which split the cores (``train.threads``).
    ``on_data_issues`` gets a detection data set's annotation problems once per data set.

    Returns the :class:`~convbench.results.Group` with its runs, plus ``errors`` (variants
    that failed) and ``report`` (paths written, by kind).

    >>> compare({}, [["optim.name=adam"]], kind="train", seeds=[0])   # doctest: +SKIP
    """
    kind_name = _kind_name(base, kind)
    run_kind = RUN_KINDS.get(kind_name)()
    if workers < 0:
        raise ConfigError(f"--workers {workers}: give 1 or more local workers, or 0 to only "
                          "queue the runs for `convbench worker` on other machines.")
    sets = _variant_sets(variants, models, run_kind.model_key)
    if not sets:
        raise ConvbenchError("Nothing to compare: pass --models a,b,c (see `convbench models`) "
                             "or --variant 'key=value …'.")
    if report is not None:
        from .report import check_report_path

        check_report_path(report)  # a bad path fails now, not after hours of training
    cfg = run_kind.build(base)
    seeds = seeds or [cfg.train.seed]
    queue_only = workers == 0
    workers = max(1, min(workers, len(sets) * len(seeds)))
    # Workers share the cores instead of each grabbing all of them.
    threads = max(1, available_cores() // workers) if workers > 1 else None
    configs = []
    for overrides in sets:
        label = variant_label(overrides, run_kind.model_key)
        variant = run_kind.override(cfg, overrides)
        # Fail fast, before any training: unknown names, missing data.
        run_kind.check(variant)
        for seed in seeds:
            seeded = run_kind.override(variant, [f"train.seed={seed}"] + (
                [f"train.threads={threads}"] if threads else []))
            run_name = run_kind.run_name(cfg.name, label, seed, len(seeds) > 1)
            configs.append(seeded.model_copy(update={"name": run_name}))
    if queue_only:
        from .search.storage import require_shared_store

        require_shared_store(store, "the runs", ConfigError)
    store = store if isinstance(store, Store) else Store(store)
    group_id = store.create_group(kind=run_kind.group_kind, name=name, config={
        "base": cfg.model_dump(mode="json"), "variants": sets, "seeds": seeds,
        "models": list(dict.fromkeys(models or [s for s in variants or []
                                                 if isinstance(s, str)])),
        # Parallel workers create runs in any order; reports show them in this one.
        "run_names": [c.name for c in configs]})
    if queue_only:
        return _queue(store, group_id, kind_name, [c.model_dump(mode="json") for c in configs])
    from .training.lifecycle import Stopped

    try:
        if workers == 1:
            errors = _run_here([_Job(kind_name, c.model_dump(mode="json"), store.url, group_id,
                                     quiet) for c in configs], _once(on_data_issues), quiet)
        else:  # the queue of `--workers 0`, drained by local workers like a search's
            _queue(store, group_id, kind_name, [c.model_dump(mode="json") for c in configs])
            errors = _run_local_workers(store, group_id, workers, _once(on_data_issues))
    except (KeyboardInterrupt, Stopped):  # finished runs stay; the stopped one can resume
        store.update_group(group_id, status="stopped")
        raise
    group = load_group(store, group_id)
    store.update_group(group_id, status="completed" if group.runs and not errors else "failed",
                       metrics={"errors": errors, "runs": len(group.runs)})
    group = in_planned_order(load_group(store, group_id))
    group["errors"] = errors
    if report is not None:
        from .report import write

        group["report"] = {k: str(p) for k, p in
                           write(group.runs, report, group=group, store=store,
                                 title=name).items()}
    return group


# ----- a comparison queued for `convbench worker` (the search's queue and workers) ----------

def _queue(store: Store, group_id: str, kind_name: str, configs: list[dict]) -> Group:
    """Queue one trial per run in the group's study; workers claim them like search trials."""
    from .search.runner import artifacts_marker
    from .search.storage import QUEUE_PHASE, enqueue, get_study, open_storage

    study = get_study(open_storage(store), group_id, QUEUE_PHASE)
    for index, config in enumerate(configs):
        enqueue(study, {}, {"job": index, "label": config["name"], "key": config["name"]})
    store.update_group(group_id, status="running", metrics={
        "queue": {"kind": kind_name, "jobs": configs},
        **artifacts_marker(store, group_id, create=True)})
    return Group({**load_group(store, group_id), "status": "queued", "waiting": len(configs),
                  "errors": []})


def queued_kinds() -> dict[str, Any]:
    """What ``convbench worker`` needs to serve queued comparisons of both run kinds."""
    from .search.storage import QUEUE_PHASE
    from .search.worker import QueuedKind

    kind = QueuedKind(QUEUE_PHASE, advance_queued, _run_trial)
    return {RUN_KINDS.get(name)().group_kind: kind for name in RUN_KINDS.names()}


def _run_trial(store: Store, group_id: str, trial: Any) -> float:
    """A worker's claimed trial of a queued comparison: its run, with the data problems it
    met kept on the trial (the process that queued the comparison tells them)."""
    issues: list[list[str]] = []
    try:
        return run_queued(store, group_id, int(trial.user_attrs["job"]), issues.append)
    finally:
        if issues:
            trial.set_user_attr("data_issues", issues)


def run_queued(store: Store, group_id: str, job: int,
               on_data_issues: DataIssues | None = None) -> float:
    """Train (or resume, or find finished) run number ``job`` of a queued comparison; its
    test accuracy (box AP for a detector) is the trial's value. A failed run raises."""
    from .atomic import DiskFull

    queue = (store.get_group(group_id).get("metrics") or {})["queue"]
    config = queue["jobs"][job]
    try:
        if queue["kind"] == "train":
            from .search.trials import train_or_resume

            run = train_or_resume(store, group_id, config["name"], config)
        else:  # a detector is trained again from the start after a kill
            run = dict(RUN_KINDS.get(queue["kind"])().run(config, store, True, group_id,
                                                          on_data_issues))
    except DiskFull:
        raise  # the worker puts the trial back in the queue
    except ConvbenchError as err:  # named like a failed variant of a local comparison
        raise ConvbenchError(f"{config['name']}: {err}") from err
    if run["status"] != "completed":
        raise ConvbenchError(f"{config['name']}: {run['status']}")
    metrics = run.get("metrics") or {}
    return float(metrics.get("test_accuracy") or metrics.get("box_AP") or 0.0)


def advance_queued(store: Store, storage: Any, group_id: str) -> str:
    """``"open"`` while runs of the queued comparison wait or run; once none does, record the
    comparison ``completed`` (``failed`` when a run failed) and return that status."""
    from optuna.trial import TrialState

    from .search.storage import QUEUE_PHASE, get_study, orphaned, trials

    with store.exclusive(f"compare-{group_id}"):
        group = store.get_group(group_id)
        if group["status"] != "running":
            return group["status"]
        study = get_study(storage, group_id, QUEUE_PHASE)
        if trials(study, (TrialState.WAITING, TrialState.RUNNING)):
            return "open"
        errors = [t.user_attrs["error"] for t in trials(study, (TrialState.FAIL,))
                  if not orphaned(t)]
        runs = len(load_group(store, group_id).runs)
        status = "completed" if runs and not errors else "failed"
        store.update_group(group_id, status=status, metrics={"errors": errors, "runs": runs})
        return status


def _run_here(jobs: list[_Job], tell: DataIssues, quiet: bool) -> list[str]:
    """Every job, one after the other in this process; the error messages."""
    errors = []
    for number, job in enumerate(jobs, 1):
        if not quiet and len(jobs) > 1:  # epoch lines alone would not say whose they are
            print(f"variant {number}/{len(jobs)}: {job.config.get('name')}",
                  file=sys.stderr, flush=True)
        errors.append(_run_job(job, tell))
    return [e for e in errors if e]


def _run_local_workers(store: Store, group_id: str, workers: int, tell: DataIssues
                       ) -> list[str]:
    """``workers`` local worker processes drain the comparison's queue (the search's
    workers, :func:`~.search.runner.run_local`); a stop puts their runs back in it. Returns
    the failed runs' errors, in run order, and tells the data problems the runs met."""
    from .search.runner import run_local, stop_local
    from .search.storage import QUEUE_PHASE, get_study, open_storage, trials
    from .search.worker import WorkerSpec
    from .training.lifecycle import stop_on_signals

    spec = WorkerSpec(store.url, store.artifacts.location, group=group_id, follow=True)
    try:
        with stop_on_signals():
            crashed = run_local(spec, workers, queued_kinds())
    except BaseException:
        stop_local()  # each worker puts its run back in the queue
        raise
    for trial in trials(get_study(open_storage(store), group_id, QUEUE_PHASE)):
        for lines in trial.user_attrs.get("data_issues") or []:
            tell(lines)
    group = store.get_group(group_id)
    if group["status"] == "running":  # the workers died before the queue was drained
        return crashed or ["no worker finished the comparison's runs"]
    return list((group.get("metrics") or {}).get("errors") or [])


def _once(on_data_issues: DataIssues | None) -> DataIssues:
    """``on_data_issues``, called once per distinct problem list: variants usually share the
    data, so its problems are news only the first time. (The first line names each run's
    own log, so the messages below it are the key.)"""
    told: set[tuple[str, ...]] = set()

    def tell(lines: list[str]) -> None:
        key = tuple(lines[1:] or lines)
        if on_data_issues is not None and key not in told:
            told.add(key)
            on_data_issues(lines)

    return tell
