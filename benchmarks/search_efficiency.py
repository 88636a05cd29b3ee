"""Search efficiency: the study's screening, random search, ASHA and median pruning against
exhaustive full training, on the study's grid over a Fashion-MNIST subset.

Ground truth is exhaustive training of every configuration (one seed) with a common recipe:
triangular2 cycles between the ends of the configuration's LR range. Then:

* screen — `convbench search` with strategy `screen` (range tests, discard rule, survivors
  trained between their own bounds), really run;
* random, ASHA, median — replayed on the exhaustive runs: training is deterministic per seed,
  so a trial's first k epochs are exactly the exhaustive run's first k epochs. Optuna's own
  pruners (as `convbench search` builds them) decide after each epoch; each method is averaged
  over `--orders` random trial orders.

Reported per method: the compute needed until the chosen configuration is within 0.5 points
(of validation accuracy) of the best, and the regret (points below the best, scored on the
ground truth) when given the compute the screening used, and a quarter of exhaustive compute.
Compute is summed training time of all runs (and epochs).

    python benchmarks/search_efficiency.py             # reduced grid, ~10 min on 2 cores
    python benchmarks/search_efficiency.py --full      # the study's 48 configurations
    python benchmarks/search_efficiency.py --dataset digits --train-limit 0   # no files needed
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

import optuna

from convbench.search import search
from convbench.search.runner import make_pruner
from convbench.search.space import SearchSpec
from convbench.store import Store

TOLERANCE = 0.5  # accuracy points


def space(args: argparse.Namespace, strategy: str) -> dict:
    data = {"dataset": args.dataset, "val_fraction": 0.2}
    if args.train_limit:
        data["train_limit"] = args.train_limit
    blocks, filters = ([2, 3, 4], [4, 8, 16, 32]) if args.full else ([2, 3], [4, 16])
    if args.dataset == "digits":  # 8×8 images: at most 3 poolings
        blocks = [b for b in blocks if b <= 3]
    return {
        "name": f"bench-{strategy}",
        "base": {"data": data, "model": {"name": "blocks"},
                 "optim": {"momentum": 0.0},
                 "schedule": {"name": "triangular2", "cycle_epochs": 2},
                 "train": {"batch_size": 64, "threads": 1}, "measure": {"cost": False}},
        "params": {"model.blocks": blocks, "model.base_filters": filters,
                   "optim.name": ["adam", "sgd"],
                   "lr_range": [[1.0e-4, 1.0e-2], [1.0e-2, 1.0e-1]]},
        "search": {"strategy": strategy, "epochs": args.epochs},
        "screen": {"epochs": args.screen_epochs, "seeds": list(range(args.screen_seeds)),
                   "group_by": ["lr_range"]},
    }


def ground_truth(summary: dict, store: Store) -> dict[str, dict]:
    """Per configuration key: final score, per-epoch validation accuracy and time."""
    table = {}
    for row in summary["rows"]:
        run = store.get_run(row["train_runs"][0])
        epochs = run["epochs"]
        table[row["key"]] = {"label": row["label"], "final": row["final"],
                             "val": [e.get("val_accuracy") or 0.0 for e in epochs],
                             "time": [e["time_s"] for e in epochs]}
    return table


def replay(table: dict[str, dict], order: list[str], pruner) -> list[tuple[float, float, str]]:
    """(cumulative seconds, cumulative epochs, incumbent key) after each trial."""
    study = optuna.create_study(direction="maximize", pruner=pruner,
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


def regret(table: dict, key: str | None) -> float | None:
    best = max(r["final"] for r in table.values())
    return None if key is None else (best - table[key]["final"]) * 100


def measure(table: dict, traces: list[list], budgets: list[float]) -> dict:
    """Mean compute to reach the tolerance, and mean regret at each budget (seconds)."""
    reach_s, reach_e, at = [], [], {b: [] for b in budgets}
    for trace in traces:
        hit = next(((s, e) for s, e, k in trace if k and regret(table, k) <= TOLERANCE), None)
        if hit:
            reach_s.append(hit[0])
            reach_e.append(hit[1])
        for b in budgets:
            within = [k for s, _, k in trace if s <= b and k]
            at[b].append(regret(table, within[-1]) if within else None)
    return {"reach_s": statistics.fmean(reach_s) if reach_s else None,
            "reach_e": statistics.fmean(reach_e) if reach_e else None,
            "reached": len(reach_s) / len(traces),
            "at": {b: (statistics.fmean(v for v in vals if v is not None)
                       if any(v is not None for v in vals) else None,
                       sum(v is None for v in vals) / len(vals)) for b, vals in at.items()}}


def _fmt(value, unit="", digits=1):
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the study's 48 configurations")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--train-limit", type=int, default=4000, help="0: the whole train split")
    ap.add_argument("--epochs", type=int, default=8, help="full-training epochs")
    ap.add_argument("--screen-epochs", type=int, default=2)
    ap.add_argument("--screen-seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--orders", type=int, default=200, help="random trial orders averaged")
    ap.add_argument("--store", help="run store (default: a temporary one)")
    args = ap.parse_args()

    folder = tempfile.mkdtemp(prefix="convbench-bench-")
    store = Store(args.store or str(Path(folder) / "runs.db"))
    print(f"store {store.url}")
    exhaustive = search(space(args, "grid"), store=store, workers=args.workers)
    table = ground_truth(exhaustive, store)
    screened = search(space(args, "screen"), store=store, workers=args.workers)

    total_s = sum(sum(r["time"]) for r in table.values())
    total_e = sum(len(r["time"]) for r in table.values())
    used = screened["compute"]["used"]
    budgets = [used["seconds"], total_s / 4]
    spec = SearchSpec.model_validate(space(args, "grid"))
    rng = random.Random(0)
    keys = sorted(table)
    orders = [rng.sample(keys, len(keys)) for _ in range(args.orders)]
    methods = {}
    for name, pruner in (("random", {"name": "none"}), ("asha", {"name": "asha"}),
                         ("median", {"name": "median"})):
        spec.search.pruner = spec.search.pruner.model_validate(pruner)
        traces = [replay(table, order, make_pruner(spec, "train")) for order in orders]
        methods[name] = measure(table, traces, budgets)

    pick = screened["winner"]["key"] if screened["winner"] else None
    r_screen = regret(table, pick)
    best = max(table.values(), key=lambda r: r["final"])
    print(f"\n{len(table)} configurations, {args.epochs} epochs each, {args.dataset} "
          f"(train_limit {args.train_limit or 'none'}); best {best['label']} "
          f"{best['final'] * 100:.2f} %; tolerance {TOLERANCE} points")
    if pick:
        print(f"screen picked {screened['winner']['label']}: {table[pick]['final'] * 100:.2f} % "
              f"under the common recipe, {screened['winner']['val'] * 100:.2f} % with its own "
              "bounds")
    else:
        print("screen picked nothing (every configuration was discarded)")
    head = (f"{'method':<11}{'to ≤0.5 pts: s':>16}{'epochs':>9}{'reached':>9}"
            f"{'regret @screen s':>18}{'regret @25% exh.':>18}")
    print("\n" + head + "\n" + "-" * len(head))
    print(f"{'exhaustive':<11}{_fmt(total_s, '', 0):>16}{total_e:>9.0f}{'100%':>9}"
          f"{'-':>18}{'0.0':>18}")
    ok = r_screen is not None and r_screen <= TOLERANCE
    print(f"{'screen':<11}{_fmt(used['seconds'] if ok else None, '', 0):>16}"
          f"{_fmt(used['epochs'] if ok else None, '', 0):>9}{'100%' if ok else '0%':>9}"
          f"{_fmt(r_screen, '', 2):>18}{'-':>18}")
    for name, m in methods.items():
        cells = []
        for b in budgets:
            mean, none = m["at"][b]
            cells.append(_fmt(mean, "", 2) + (f" ({none:.0%} none)" if none else ""))
        print(f"{name:<11}{_fmt(m['reach_s'], '', 0):>16}{_fmt(m['reach_e'], '', 0):>9}"
              f"{m['reached']:>9.0%}{cells[0]:>18}{cells[1]:>18}")
    print(f"\nscreen used {used['seconds']:.0f} s / {used['epochs']:.0f} epochs, "
          f"{used['seconds'] / total_s * 100:.0f} % of the exhaustive time; "
          f"random/ASHA/median: mean over {args.orders} orders.")
    print(f"search groups: exhaustive {exhaustive['id']}, screen {screened['id']} "
          f"(convbench search --list --store {store.url})")


if __name__ == "__main__":
    main()
