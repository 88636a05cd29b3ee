"""Search efficiency at the study's proportions: the screen and its cheaper variants, random
search, ASHA, Hyperband and median pruning against exhaustive full training, on the study's
grid over a Fashion-MNIST subset.

Proportions as in study 004: range tests are short and full training is at least 5× longer
(default 2-epoch tests and 10-epoch training on 2,000 images; ``--full``: the study's 48
configurations, 8 and 50 epochs).

* exhaustive — `convbench search` with strategy `grid`: every configuration trained in full with
  a common recipe (triangular2 between the ends of its LR range), seed 0 as the ground truth;
  its best ``--stability-top`` configurations are trained again with seeds 1–2
  (``--stability-seeds 3``) to check how stable that truth is;
* screen variants — `convbench search` with strategy `screen`, really run: the study's screen
  (``--screen-seeds`` seeds, every test to its end, survivors in full), then each cheaper
  option alone (early stops, adaptive seeds, survivors by successive halving, range tests on a
  stratified subset), all four together, and the `screen` defaults as they stand;
* random, ASHA, Hyperband, median — replayed on the exhaustive runs: training is deterministic
  per seed, so a trial's first k epochs are exactly the exhaustive run's first k epochs.
  Optuna's own pruners (as `convbench search` builds them) decide after each epoch; each
  method is averaged over ``--orders`` random trial orders.

Compute is counted in ground-truth seconds, so that runs made at different times on a shared
machine compare: every configuration's mean training seconds per epoch in the exhaustive run,
times the epochs a run trained (a range test counts its iterations as the share of a full
training epoch they are; a subset's epoch is smaller). Reported per method: the compute from
which the pick (best finished trial so far) stays within 0.5 points of the best, and the
regret (points below the best, on the ground truth) at the default screen's compute and at a
quarter of exhaustive compute. A screen's survivors are taken in the order they were queued
(best early score first); its pick after each is the best trained so far by its own
validation score (a tie goes to the better early score, as the search picks its winner).

    python benchmarks/search_efficiency.py             # reduced grid, ~40 min on 2 busy cores
    python benchmarks/search_efficiency.py --full      # the study's 48 configurations
    python benchmarks/search_efficiency.py --dataset digits --train-limit 0 --variants study,all
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import optuna

from convbench.config import DataConfig
from convbench.data import load_data
from convbench.search import search
from convbench.search.runner import make_pruner
from convbench.search.space import SearchSpec, parse
from convbench.search.summary import winning_order
from convbench.store import Store
from convbench.training.classification import batches_per_epoch

TOLERANCE = 0.5  # accuracy points
BATCH = 64
# Every variant sets each cheaper-screen option itself, so that a change of the `screen`
# defaults changes only the "default" variant (and a store's earlier searches of the other
# variants are still reused).
# The study's screen: every cheaper option off (whatever the defaults are).
STUDY = {"stop_at_chance": None, "stop_diverged": None, "stop_hopeless": False,
         "adaptive_seeds": False, "near": 0.03, "spread_z": 2.0, "survivors": "full",
         "halving_min_epochs": 1, "halving_factor": 3, "subset": None}
EARLY = {"stop_at_chance": 0.5, "stop_diverged": 0.2, "stop_hopeless": True}
ADAPTIVE = {"adaptive_seeds": True, "seeds": [0, 1, 2]}
HALVING = {"survivors": "halving"}


VARIANTS = ("study", "early", "adaptive", "halving", "subset", "early+halving",
            "early+adaptive(near 0.10)+halving", "all", "default")


def variants(args: argparse.Namespace) -> dict[str, dict | None]:
    """Screen sections by name (None: the `screen` defaults as they stand)."""
    subset = {"subset": max(BATCH * 4, (args.train_limit or 60000) // 4)}
    return {"study": STUDY, "early": {**STUDY, **EARLY}, "adaptive": {**STUDY, **ADAPTIVE},
            "halving": {**STUDY, **HALVING}, "subset": {**STUDY, **subset},
            "early+halving": {**STUDY, **EARLY, **HALVING},
            "early+adaptive(near 0.10)+halving": {**STUDY, **EARLY, **ADAPTIVE, **HALVING,
                                                  "near": 0.10},
            "all": {**STUDY, **EARLY, **ADAPTIVE, **HALVING, **subset}, "default": None}


def space(args: argparse.Namespace, strategy: str, screen: dict | None = None,
          seeds: list[int] | None = None) -> dict:
    data = {"dataset": args.dataset, "val_fraction": 0.2}
    if args.train_limit:
        data["train_limit"] = args.train_limit
    blocks, filters = ([2, 3, 4], [4, 8, 16, 32]) if args.full else ([2, 3], [4, 16])
    if args.dataset == "digits":  # 8×8 images: at most 3 poolings
        blocks = [b for b in blocks if b <= 3]
    base_screen = {"epochs": args.screen_epochs, "group_by": ["lr_range"]}
    if screen is not None:
        base_screen |= {"seeds": list(range(args.screen_seeds))} | screen
    return {
        "name": f"bench-{strategy}",
        "base": {"data": data, "model": {"name": "blocks"},
                 "optim": {"momentum": 0.0},
                 "schedule": {"name": "triangular2", "cycle_epochs": 2},
                 "train": {"batch_size": BATCH, "threads": 1}, "measure": {"cost": False}},
        "params": {"model.blocks": blocks, "model.base_filters": filters,
                   "optim.name": ["adam", "sgd"],
                   "lr_range": [[1.0e-4, 1.0e-2], [1.0e-2, 1.0e-1]]},
        "search": {"strategy": strategy, "epochs": args.epochs,
                   **({"seeds": seeds} if seeds else {})},
        "screen": base_screen,
    }


def settings(spec: dict) -> dict:
    """What a search's results depend on: its whole spec, less the ``screen`` section when
    it does not screen (a change of the screen's defaults leaves an exhaustive grid valid)."""
    if spec["search"]["strategy"] == "screen" or spec["search"]["pruner"]["name"] == "screen":
        return spec
    return {k: v for k, v in spec.items() if k != "screen"}


def cached_search(data: dict, store: Store, workers: int) -> dict:
    """The summary of a completed search with the same settings in ``store`` (a re-run with
    ``--store`` only runs what changed, and the exhaustive ground truth is run once), else
    run it."""
    want = settings(parse(data).model_dump(mode="json"))
    for group in store.list_groups(kind="search"):
        full = store.get_group(group["id"])
        summary = (full.get("metrics") or {}).get("summary")
        spec = full["config"].get("spec")
        if (full["status"] == "completed" and summary and spec
                and settings(spec) == want):
            print(f"reusing search {group['id']} ({data['name']})")
            return summary
    return search(data, store=store, workers=workers)


# ----- ground truth and compute --------------------------------------------------------------

def ground_truth(summary: dict, store: Store) -> dict[str, dict]:
    """Per configuration key: seed 0's final score and per-epoch validation accuracy, and the
    mean seconds per epoch (the compute unit)."""
    table = {}
    for row in summary["rows"]:
        run = store.get_run(row["train_runs"][0])
        epochs = run["epochs"]
        spe = statistics.fmean(e["time_s"] for e in epochs)
        table[row["key"]] = {"label": row["label"], "final": _final(run),
                             "val": [e.get("val_accuracy") or 0.0 for e in epochs],
                             "spe": spe, "time": [spe] * len(epochs)}
    return table


def _final(run: dict) -> float:
    m = run.get("metrics") or {}
    vals = [e.get("val_accuracy") or 0.0 for e in run["epochs"]]
    return m.get("best_val_accuracy") if m.get("best_val_accuracy") is not None else max(vals)


class Cost:
    """A run's compute in ground-truth seconds (see the module doc)."""

    def __init__(self, store: Store, table: dict[str, dict], ipe_full: int):
        self.store, self.table, self.ipe = store, table, ipe_full

    def epochs(self, run_id: str) -> float:
        run = self.store.get_run(run_id)
        m = run.get("metrics") or {}
        if run["kind"] == "lr-find":
            return float(m.get("iterations") or 0) / self.ipe
        return float(m.get("epochs_run") or len(run["epochs"]))

    def __call__(self, run_id: str, key: str) -> float:
        return self.epochs(run_id) * self.table[key]["spe"]


def regret(table: dict, key: str | None) -> float | None:
    best = max(r["final"] for r in table.values())
    return None if key is None else (best - table[key]["final"]) * 100


# ----- the methods ---------------------------------------------------------------------------

def replay(table: dict[str, dict], order: list[str], pruner,
           name: str) -> list[tuple[float, float, str]]:
    """(cumulative seconds, cumulative epochs, incumbent key) after each trial. The study's
    ``name`` is fixed: Hyperband assigns trials to brackets by a hash of it."""
    study = optuna.create_study(study_name=name, direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    seconds = epochs = 0.0
    done: dict[str, float] = {}
    trace = []
    for key in order:
        trial = study.ask()
        row = table[key]
        for step, (val, t) in enumerate(zip(row["val"], row["time"], strict=True), 1):
            seconds, epochs = seconds + t, epochs + 1
            trial.report(val, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, row["final"])
            done[key] = row["final"]
        trace.append((seconds, epochs, max(done, key=done.get) if done else None))
    return trace


def screen_trace(summary: dict, cost: Cost) -> tuple[list[tuple[float, float, str | None]],
                                                      dict[str, Any]]:
    """A real screen as a trace: all its range tests first, then its survivors in the order
    they were queued (best early score first); the pick is the best survivor so far by its
    own validation score. Also the breakdown of its compute."""
    rows = summary["rows"]
    parts: dict[str, float] = {"full-length tests": 0.0, "extra seeds": 0.0}
    saved: dict[str, float] = {}
    screening = screening_e = 0.0
    for r in rows:
        stopped = {s["run"]: s for s in r.get("early_stops") or []}
        for i, rid in enumerate(r.get("screen_runs") or []):
            c, e = cost(rid, r["key"]), cost.epochs(rid)
            screening, screening_e = screening + c, screening_e + e
            if i > 0 and summary["spec"]["screen"]["adaptive_seeds"]:
                parts["extra seeds"] += c
            elif rid in stopped:
                rule = stopped[rid]["rule"]
                parts[f"tests stopped ({rule})"] = parts.get(f"tests stopped ({rule})", 0) + c
                # What the rest of the test would have cost.
                frac = stopped[rid]["fraction"]
                saved[rule] = saved.get(rule, 0.0) + c * (1 - frac) / max(frac, 1e-9)
            else:
                parts["full-length tests"] += c
    trained = sorted((r for r in rows if r.get("train_runs")),
                     key=lambda r: -(r.get("early") or 0.0))
    seconds, epochs, best, trace = screening, screening_e, None, []
    parts["survivors"] = 0.0
    for r in trained:
        for rid in r["train_runs"]:
            c = cost(rid, r["key"])
            seconds, epochs = seconds + c, epochs + cost.epochs(rid)
            parts["survivors"] += c
        if r.get("final") is not None and (best is None
                                           or winning_order(r) > winning_order(best)):
            best = r  # as the search picks its winner
        trace.append((seconds, epochs, best["key"] if best else None))
    if not trace:
        trace.append((seconds, epochs, None))
    return trace, {"parts": parts, "saved": saved, "used": seconds}


def measure(table: dict, traces: list[list], budgets: list[float]) -> dict:
    """Mean compute to reach the tolerance for good (a screen's pick, judged on its own
    trainings, may reach it and lose it again), and mean regret at each budget (seconds)."""
    reach_s, reach_e, at = [], [], {b: [] for b in budgets}
    for trace in traces:
        within = [bool(k) and regret(table, k) <= TOLERANCE for _, _, k in trace]
        first = next((i for i in range(len(trace)) if all(within[i:])), None)
        hit = None if first is None else trace[first][:2]
        if hit:
            reach_s.append(hit[0])
            reach_e.append(hit[1])
        for b in budgets:
            within = [k for s, _, k in trace if s <= b + 1e-9 and k]
            at[b].append(regret(table, within[-1]) if within else None)
    return {"reach_s": statistics.fmean(reach_s) if reach_s else None,
            "reach_e": statistics.fmean(reach_e) if reach_e else None,
            "reached": len(reach_s) / len(traces),
            "at": {b: (statistics.fmean(v for v in vals if v is not None)
                       if any(v is not None for v in vals) else None,
                       sum(v is None for v in vals) / len(vals)) for b, vals in at.items()}}


def _train_one(store_url: str, cfg: dict, group_id: str) -> float:
    from convbench.training import train

    return _final(dict(train(cfg, store=store_url, group_id=group_id, quiet=True)))


def stability(exhaustive: dict, store: Store, table: dict, seeds: int, top: int,
              workers: int) -> str | None:
    """Check the one-seed ground truth: train its ``top`` configurations again with seeds
    1…``seeds``−1 (real runs, same config as seed 0's), and say whether the best stays the
    best of the median over seeds, and how much the seeds spread."""
    if seeds < 2 or top < 1:
        return None
    rows = {r["key"]: r for r in exhaustive["rows"]}
    keys = sorted(table, key=lambda k: -table[k]["final"])[:top]
    have = {r["name"]: r["id"] for r in store.list_runs(group_id=exhaustive["id"])
            if r["status"] == "completed"}
    jobs = {}
    for key in keys:
        base = store.get_run(rows[key]["train_runs"][0])["config"]
        for seed in range(1, seeds):
            name = f"{rows[key]['label']} · stability · s{seed}"
            cfg = {**base, "name": name, "train": {**base["train"], "seed": seed}}
            jobs[(key, seed)] = (name, cfg)
    finals: dict[tuple, float] = {}
    todo = {k: v for k, v in jobs.items() if v[0] not in have}
    for k, (name, _) in jobs.items():
        if name in have:
            finals[k] = _final(store.get_run(have[name]))
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {k: pool.submit(_train_one, store.url, cfg, exhaustive["id"])
                   for k, (_, cfg) in todo.items()}
        finals |= {k: f.result() for k, f in futures.items()}
    med = {k: statistics.median([table[k]["final"]] + [finals[(k, s)] for s in range(1, seeds)])
           for k in keys}
    std = [statistics.pstdev([table[k]["final"]] + [finals[(k, s)] for s in range(1, seeds)])
           for k in keys]
    best_m = max(keys, key=med.get)
    gap = (med[best_m] - med[keys[0]]) * 100
    return (f"stability ({seeds} seeds for the top {len(keys)} of seed 0): seed 0's best "
            f"{table[keys[0]]['label']} is {'also' if best_m == keys[0] else 'not'} the best of "
            f"the median over seeds ({gap:.2f} points below it); mean std over seeds "
            f"{statistics.fmean(std) * 100:.2f} points, the tolerance is {TOLERANCE}")


# ----- output --------------------------------------------------------------------------------

def _fmt(value, unit="", digits=1):
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def machine() -> str:
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    # The instruction sets that change floating-point results (and speed) of CPU training.
    have = next((line.split() for line in flags.splitlines() if line.startswith("Flags")), [])
    isa = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16") if f in have) or "no avx2"
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines()
                  if line.startswith("Model name")), platform.processor())
    return f"{model}, {isa}, {os.cpu_count()} cores"


def print_table(table, total_s, methods, budgets, names) -> None:
    w = max(18, *(len(n) + 2 for n in names))
    head = (f"{'method':<{w}}{'to ≤0.5 pts: s':>15}{'% exh.':>8}{'epochs':>8}{'reached':>9}"
            f"{'regret @screen':>16}{'regret @25% exh.':>18}")
    print("\n" + head + "\n" + "-" * len(head))
    total_e = sum(len(r["time"]) for r in table.values())
    print(f"{'exhaustive':<{w}}{total_s:>15.0f}{'100%':>8}{total_e:>8.0f}{'100%':>9}"
          f"{'0.00':>16}{'0.00':>18}")
    for name in names:
        m = methods[name]
        cells = []
        for b in budgets:
            mean, none = m["at"][b]
            cells.append(_fmt(mean, "", 2) + (f" ({none:.0%} none)" if none else ""))
        share = None if m["reach_s"] is None else m["reach_s"] / total_s * 100
        print(f"{name:<{w}}{_fmt(m['reach_s'], '', 0):>15}{_fmt(share, '%', 0):>8}"
              f"{_fmt(m['reach_e'], '', 0):>8}{m['reached']:>9.0%}{cells[0]:>16}{cells[1]:>18}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true",
                    help="the study's 48 configurations, 8-epoch range tests, 50-epoch training")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--train-limit", type=int, default=2000, help="0: the whole train split")
    ap.add_argument("--epochs", type=int, help="full-training epochs (default 10; --full 50)")
    ap.add_argument("--screen-epochs", type=int, help="range-test epochs (default 2; --full 8)")
    ap.add_argument("--screen-seeds", type=int, default=2, help="seeds of the study's screen")
    ap.add_argument("--stability-seeds", type=int, default=3,
                    help="seeds of the ground truth's stability check (seed 0 is the truth)")
    ap.add_argument("--stability-top", type=int, default=4,
                    help="configurations (best of seed 0) trained again for that check")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="screen variants to run, comma-separated (default all: "
                         + ", ".join(VARIANTS) + ")")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--orders", type=int, default=200, help="random trial orders averaged")
    ap.add_argument("--store", help="run store (default: a temporary one)")
    args = ap.parse_args()
    args.epochs = args.epochs or (50 if args.full else 10)
    args.screen_epochs = args.screen_epochs or (8 if args.full else 2)
    if args.epochs < 5 * args.screen_epochs:
        ap.error(f"full training ({args.epochs} epochs) must be at least 5× the range test "
                 f"({args.screen_epochs}): the study's proportions")
    started = time.time()
    # The replays create hundreds of in-memory studies (`search` quiets Optuna only when a
    # search really runs, not when every one is reused from --store).
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = tempfile.mkdtemp(prefix="convbench-bench-")
    store = Store(args.store or str(Path(folder) / "runs.db"))
    print(f"store {store.url}; {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")

    exhaustive = cached_search(space(args, "grid"), store, args.workers)
    table = ground_truth(exhaustive, store)
    data = space(args, "grid")["base"]["data"]
    n_train = len(load_data(DataConfig(**data), 0).train)
    cost = Cost(store, table, batches_per_epoch(n_train, BATCH))
    total_s = sum(sum(r["time"]) for r in table.values())

    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    screens: dict[str, tuple[dict, list, dict]] = {}
    seen: dict[str, str] = {}
    for name, section in variants(args).items():
        if name not in wanted:
            continue
        spec = space(args, "screen", section)
        same = seen.get(repr(SearchSpec.model_validate(spec).screen))
        if same:  # the defaults may be one of the variants: run it once
            screens[name] = screens[same]
            continue
        seen[repr(SearchSpec.model_validate(spec).screen)] = name
        summary = cached_search(spec, store, args.workers)
        trace, parts = screen_trace(summary, cost)
        screens[name] = (summary, trace, parts)

    ref = "default" if "default" in screens else next(iter(screens), None)
    budgets = [screens[ref][2]["used"] if ref else total_s / 4, total_s / 4]
    methods = {f"screen {n}": measure(table, [t], budgets) for n, (_, t, _) in screens.items()}
    spec = SearchSpec.model_validate(space(args, "grid"))
    rng = random.Random(0)
    keys = sorted(table)
    orders = [rng.sample(keys, len(keys)) for _ in range(args.orders)]
    for name, pruner in (("random", {"name": "none"}), ("ASHA", {"name": "asha"}),
                         ("Hyperband", {"name": "hyperband"}), ("median", {"name": "median"})):
        spec.search.pruner = spec.search.pruner.model_validate(pruner)
        traces = [replay(table, order, make_pruner(spec, "train"), f"order-{i}")
                  for i, order in enumerate(orders)]
        methods[name] = measure(table, traces, budgets)

    best = max(table.values(), key=lambda r: r["final"])
    print(f"\n{len(table)} configurations; range tests {args.screen_epochs} epochs, training "
          f"{args.epochs} epochs; {args.dataset} (train_limit {args.train_limit or 'none'}); "
          f"best {best['label']} {best['final'] * 100:.2f} %; tolerance {TOLERANCE} points")
    note = stability(exhaustive, store, table, args.stability_seeds, args.stability_top,
                     args.workers)
    if note:
        print(note)
    print_table(table, total_s, methods, budgets, list(methods))
    print(f"\ncompute in ground-truth seconds (exhaustive {total_s:.0f} s); regret @screen: at "
          f"the compute of screen {ref} ({budgets[0]:.0f} s, {budgets[0] / total_s:.0%}); "
          f"random/ASHA/Hyperband/median: mean over {args.orders} orders.")
    print("\nscreen variants: compute used (share of exhaustive), where it went, final pick")
    for name, (summary, trace, parts) in screens.items():
        pick = trace[-1][2]
        where = ", ".join(f"{k} {v:.0f} s" for k, v in parts["parts"].items() if v)
        saved = ", ".join(f"{k} saved ~{v:.0f} s" for k, v in parts["saved"].items())
        counts = ", ".join(f"{n} {k}" for k, n in sorted(summary["counts"].items()))
        print(f"  {name} {parts['used']:>6.0f} s ({parts['used'] / total_s:>4.0%}): {where}"
              f"{'; ' + saved if saved else ''}; {counts}; pick "
              f"{table[pick]['label'] if pick else 'none'} (regret "
              f"{_fmt(regret(table, pick), '', 2)})")
    print(f"\nsearch groups in {store.url} (convbench search --list --store {store.url}); "
          f"wall time {(time.time() - started) / 60:.0f} min")


if __name__ == "__main__":
    main()
