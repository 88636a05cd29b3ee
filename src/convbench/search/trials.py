"""What one trial does: screen a configuration (range tests over seeds), train it in full
(over seeds, the first one reporting to the pruner), or both with the online discard rule.

Every piece of work is a stored run with a name made of the configuration's label, the phase,
the trial's origin number and the seed, so a trial re-run after a kill finds the runs its
first attempt finished (and reuses them), resumes an interrupted training from its checkpoint,
and redoes only what was cut short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..store import Store
from ..training import train
from ..training.engine import LAST, EpochHook
from ..training.lr_finder import LRFindSpec, aggregate_bounds, run_range_test
from .early import ScreenStop
from .rules import chance_of, decisive, summarise, verdict
from .space import SearchSpec, group_of, key_of, label_of, run_config, suggest
from .storage import origin_of, orphaned, trials

Point = dict[str, Any]


@dataclass
class Context:
    """What a worker needs to run trials of one phase."""

    store: Store
    spec: SearchSpec
    group_id: str
    phase: str
    threads: int | None = None
    quiet: bool = True


def run_name(label: str, phase: str, origin: int, seed: int) -> str:
    """The stored name of one piece of work.

    >>> run_name("blocks=2", "screen", 3, 0)
    'blocks=2 · screen #3 · s0'
    """
    return f"{label} · {phase} #{origin} · s{seed}"


def find_run(store: Store, group_id: str, name: str) -> dict | None:
    """The group's run called ``name`` (not one superseded by a fresh start), or None."""
    found = [r for r in store.list_runs(group_id=group_id)
             if r["name"] == name and not (r.get("metrics") or {}).get("superseded")]
    return store.get_run(found[0]["id"]) if found else None


def _find(ctx: Context, name: str) -> dict | None:
    return find_run(ctx.store, ctx.group_id, name)


def _supersede(store: Store, run: dict) -> None:
    store.update(run["id"], status="stopped", metrics={"superseded": True}, ended=True)


def _extra(ctx: Context, fields: dict[str, Any]) -> dict[str, Any]:
    return fields | ({"train.threads": ctx.threads} if ctx.threads else {})


# ----- screening ---------------------------------------------------------------------------

def range_spec(spec: SearchSpec, cfg: Any) -> LRFindSpec:
    s = spec.screen
    return LRFindSpec(min_lr=cfg.optim.lr, max_lr=cfg.schedule.max_lr, mode=s.mode,
                      epochs=s.epochs, iters=s.iters, rule=s.bounds)


def early_score(run: dict, how: str) -> float | None:
    m = run.get("metrics") or {}
    return m.get("best_val_accuracy") if how == "best_val" else m.get("final_val_accuracy")


def screen_seeds(spec: SearchSpec, trial: optuna.Trial) -> list[int]:
    """The seeds this screening trial runs: its own list (a later round of adaptive seeds),
    else the first seed with ``adaptive_seeds``, else all of ``screen.seeds``."""
    own = trial.user_attrs.get("seeds")
    if own:
        return list(own)
    return list(spec.screen.seeds[:1] if spec.screen.adaptive_seeds else spec.screen.seeds)


def screen_config(ctx: Context, point: Point) -> Any:
    """The range tests' config: the point, on a stratified subset with ``screen.subset``."""
    extra: dict[str, Any] = {}
    subset = ctx.spec.screen.subset
    if subset:
        limit = run_config(ctx.spec, point).data.train_limit
        extra["data.train_limit"] = min(subset, limit or subset)
    return run_config(ctx.spec, point, _extra(ctx, extra))


def reference(ctx: Context, trial: optuna.Trial, group: str, origin: int) -> float | None:
    """The best early score of the group known before this configuration (for the hopeless
    stop): finished configurations of the group that come earlier in the queue. Earlier ones
    only, so a trial re-run after a kill (one worker) is judged against the same reference."""
    scores = [t.user_attrs.get("early") for t in trials(trial.study, (TrialState.COMPLETE,))
              if t.user_attrs.get("group") == group and not orphaned(t)
              and origin_of(t) < origin]
    scores = [s for s in scores if s is not None]
    return max(scores) if scores else None


def screen(ctx: Context, trial: optuna.Trial, point: Point, origin: int) -> dict[str, Any]:
    """Range tests of ``point`` over the screening seeds; returns and records the early score
    (``value`` median or mean over seeds, plus median, mean, std), chance level and bounds.
    With early-stop rules a test may end when decided (``early_stops``, with seed, rule, why
    and when); a decisive stop (``early_stop``) ends the configuration's screening."""
    spec, label = ctx.spec, label_of(point)
    cfg = screen_config(ctx, point)
    lr_spec = range_spec(spec, cfg)
    ref = reference(ctx, trial, group_of(spec, point), origin) if spec.screen.stop_hopeless \
        else None
    runs, stops, seeds = [], [], []
    # Only the first seed may stop early: when it did not decide, the seeds added after it
    # are there to measure the score's spread and run to their end.
    first = screen_seeds(spec, trial)[0]
    for seed in screen_seeds(spec, trial):
        name = run_name(label, "screen", origin, seed)
        run = _find(ctx, name)
        if run is not None and run["status"] != "completed":
            _supersede(ctx.store, run)
            run = None
        if run is None:
            rule = ScreenStop(spec.screen, ref) if spec.screen.stops_early and seed == first \
                else None
            run = dict(run_range_test(cfg, lr_spec, seed=seed, store=ctx.store,
                                      group_id=ctx.group_id, name=name, quiet=ctx.quiet,
                                      stop_rule=rule))
        runs.append(run)
        seeds.append(seed)
        stop = (run.get("metrics") or {}).get("early_stop")
        if stop:
            stops.append({**stop, "seed": seed, "run": run["id"]})
            if decisive(stop):  # decided: the other seeds would not change the verdict
                break
    stats = summarise([early_score(r, spec.screen.score) for r in runs], spec.screen.aggregate)
    bounds = aggregate_bounds(runs, spec.screen.bounds)
    result = {"early": stats["value"], "early_stats": stats,
              "chance": chance_of(runs[0]["metrics"], spec.screen.chance),
              "lr_lower": bounds["lower"], "lr_upper": bounds["upper"],
              "swept": [cfg.optim.lr, cfg.schedule.max_lr],
              "screen_runs": [r["id"] for r in runs], "early_stops": stops,
              "early_stop": next((x for x in stops if decisive(x)), None),
              "seeds_run": seeds}
    for k, v in result.items():
        trial.set_user_attr(k, v)
    return result


def peers(ctx: Context, trial: optuna.Trial, group: str) -> list[float | None]:
    """Early scores of the other screened trials of the same group (online discard rule)."""
    return [t.user_attrs.get("early") for t in trials(trial.study)
            if t.number != trial.number and t.user_attrs.get("group") == group
            and "early" in t.user_attrs and not orphaned(t)
            and "duplicate_of" not in t.user_attrs]


# ----- full training -----------------------------------------------------------------------

def final_score(run: dict) -> float | None:
    """Best validation accuracy of a training run (also of a diverged one: its best epoch)."""
    m = run.get("metrics") or {}
    if m.get("best_val_accuracy") is not None:
        return m["best_val_accuracy"]
    vals = [e["val_accuracy"] for e in run.get("epochs") or []
            if e.get("val_accuracy") is not None]
    return max(vals) if vals else (0.0 if run["status"] in ("diverged", "completed") else None)


def pruning_hook(trial: optuna.Trial, last_epoch: int) -> EpochHook:
    """Report each epoch's validation accuracy; prune when the pruner says so, but never at
    the last epoch (the trial has finished training: pruning it would only lose its score)."""
    def hook(epoch: int, row: dict) -> bool:
        value = row.get("val_accuracy")
        if value is None or not math.isfinite(value):
            return False
        trial.report(value, epoch)
        return epoch < last_epoch and trial.should_prune()

    return hook


def train_or_resume(store: Store, group_id: str, name: str, cfg: Any,
                    hook: EpochHook | None = None, quiet: bool = True) -> dict:
    """Train the group's run ``name`` once, whoever asks how often: a finished one is
    returned, an interrupted one resumed from its checkpoint, one killed before its first
    checkpoint started over (queued trials and queued comparisons alike).

    >>> train_or_resume(store, gid, "B2FL8-s0", cfg)["status"]     # doctest: +SKIP
    'completed'
    """
    run = find_run(store, group_id, name)
    if run is not None:
        done = run["status"] in ("completed", "diverged") or run["metrics"].get("pruned")
        if done:
            return run
        checkpoint = store.run_dir(run["id"]) / LAST
        if run["status"] in ("running", "stopped") and checkpoint.exists():
            for row in run.get("epochs") or []:  # the pruner sees the epochs already done
                if hook is not None and hook(row["epoch"], row):
                    store.update(run["id"], status="stopped", ended=True)
                    return store.get_run(run["id"]) | {"status": "stopped"}
            return dict(train(store=store, resume=run["id"], quiet=quiet, on_epoch=hook))
        _supersede(store, run)
    return dict(train(cfg, store=store, quiet=quiet, group_id=group_id, on_epoch=hook))


def train_config(ctx: Context, point: Point, bounds: list[float] | None, seed: int,
                 name: str) -> Any:
    """The full-training config: the point, ``search.epochs``, the seed and, after screening,
    the screening schedule between the bounds the configuration's own range test found."""
    fields = {"train.epochs": ctx.spec.full_epochs, "train.seed": seed, "name": name}
    if bounds:
        fields |= {"schedule.name": ctx.spec.screen.schedule, "schedule.bounds": "manual",
                   "optim.lr": bounds[0], "schedule.max_lr": bounds[1]}
    return run_config(ctx.spec, point, _extra(ctx, fields))


def train_all(ctx: Context, trial: optuna.Trial, point: Point, origin: int,
              bounds: list[float] | None) -> float:
    """Train ``point`` over ``search.seeds``; the first seed reports each epoch's validation
    accuracy to the pruner (in the train phase), and a pruned first seed ends the trial."""
    spec = ctx.spec
    prunable = ctx.phase == "train" and spec.prunes_training
    runs = []
    for i, seed in enumerate(spec.search.seeds):
        name = run_name(label_of(point), ctx.phase, origin, seed)
        cfg = train_config(ctx, point, bounds, seed, name)
        hook = pruning_hook(trial, spec.full_epochs) if prunable and i == 0 else None
        run = train_or_resume(ctx.store, ctx.group_id, name, cfg, hook, ctx.quiet)
        runs.append(run)
        trial.set_user_attr("train_runs", [r["id"] for r in runs])
        if run["status"] == "stopped" or run["metrics"].get("pruned"):
            epoch = len(run.get("epochs") or [])
            ctx.store.update(run["id"], metrics={"pruned": True, "pruned_epoch": epoch})
            trial.set_user_attr("pruned_epoch", epoch)
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")
    stats = summarise([final_score(r) for r in runs], spec.search.aggregate)
    trial.set_user_attr("final", stats["value"])
    trial.set_user_attr("final_stats", stats)
    trial.set_user_attr("statuses", [r["status"] for r in runs])
    return stats["value"] if stats["value"] is not None else 0.0


# ----- one trial ---------------------------------------------------------------------------

def execute(ctx: Context, trial: optuna.Trial) -> float:
    """Run one trial of ``ctx.phase`` and return its value (early score in the screen phase,
    final validation accuracy otherwise); raises ``optuna.TrialPruned`` when discarded."""
    point = suggest(trial, ctx.spec)
    origin = origin_of(trial)
    group = group_of(ctx.spec, point)
    for k, v in {"key": key_of(point), "label": label_of(point), "point": point,
                 "group": group}.items():
        trial.set_user_attr(k, v)
    if ctx.phase == "train" and ctx.spec.search.strategy in ("random", "tpe"):
        reuse_earlier(trial)
    if ctx.phase == "screen":
        result = screen(ctx, trial, point, origin)
        return result["early"] if result["early"] is not None else 0.0
    bounds = trial.user_attrs.get("lr_bounds")
    if ctx.phase == "train" and ctx.spec.search.pruner.name == "screen":
        result = screen(ctx, trial, point, origin)
        found = verdict(result["early"], result["chance"],
                        peers(ctx, trial, group) + [result["early"]], ctx.spec.screen,
                        result["early_stop"])
        if found:
            trial.set_user_attr("discarded", found[1])
            trial.set_user_attr("discard_rule", found[0])
            raise optuna.TrialPruned(found[1])
        bounds = bounds_of(result)
    return train_all(ctx, trial, point, origin, bounds)


class Repeated(Exception):
    """A sampled configuration that an earlier trial already trained: its value is reused."""

    def __init__(self, earlier: FrozenTrial):
        super().__init__(f"same configuration as #{earlier.number}; not trained again")
        self.value = earlier.value


def reuse_earlier(trial: optuna.Trial) -> None:
    """Random and TPE sampling draw with replacement, so on a space of choices they repeat
    configurations. A repeat takes the earlier trial's results instead of training again
    (raising :class:`Repeated`, or ``TrialPruned`` if the earlier one was pruned)."""
    key = trial.user_attrs["key"]
    for t in trials(trial.study, (TrialState.COMPLETE, TrialState.PRUNED)):
        if t.number == trial.number or t.user_attrs.get("key") != key:
            continue
        for k, v in t.user_attrs.items():
            if k not in ("slot", "origin", "duplicate_of"):
                trial.set_user_attr(k, v)
        trial.set_user_attr("duplicate_of", t.number)
        if t.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"same configuration as #{t.number}, which was pruned")
        raise Repeated(t)


def bounds_of(result: dict[str, Any]) -> list[float]:
    """The screened bounds, or the swept range when the range test found none."""
    if result.get("lr_lower") is None or result.get("lr_upper") is None:
        return list(result["swept"])
    return [result["lr_lower"], result["lr_upper"]]
