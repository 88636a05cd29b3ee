"""The effect of each training technique of docs/training.md, switched on alone against the
same base run (one `convbench.compare` group: same data, model, budget and seed).

    python benchmarks/techniques.py [--dataset fashion-mnist] [--train-limit 6000]
                                    [--epochs 3] [--model custom-cnn] [--seed 0]

Prints one row per variant: test accuracy (full test set), its difference to the base, and
the training time. One seed per variant: a difference below about one point is noise.
"""

from __future__ import annotations

import argparse
import tempfile

from throughput import cpu_flags

import convbench
from convbench.results import in_planned_order

# The weight-decay pair is measured against its own base: no_decay_norm_bias changes nothing
# without weight decay.
VARIANTS = {
    "base": [],
    "train.ema=0.99": ["train.ema=0.99"],
    "train.tta=true": ["train.tta=true"],
    "mixup_alpha=0.2": ["data.augment.mixup_alpha=0.2"],
    "cutmix_alpha=1.0": ["data.augment.cutmix_alpha=1.0"],
    "adamw wd=0.05": ["optim.name=adamw", "optim.weight_decay=0.05"],
    "adamw wd=0.05 + no_decay_norm_bias": ["optim.name=adamw", "optim.weight_decay=0.05",
                                           "optim.no_decay_norm_bias=true"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--train-limit", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--model", default="custom-cnn")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    base = {"data": {"dataset": a.dataset, "train_limit": a.train_limit},
            "model": {"name": a.model}, "train": {"epochs": a.epochs, "seed": a.seed},
            "measure": {"cost": False}}
    with tempfile.TemporaryDirectory() as tmp:
        group = convbench.compare(base, list(VARIANTS.values()), kind="train",
                                  store=f"{tmp}/runs.db", name="techniques")
        runs = in_planned_order(group).runs
    print(f"{a.model}, {a.dataset} train_limit={a.train_limit}, {a.epochs} epochs, seed "
          f"{a.seed}; CPU flags: {cpu_flags()}")
    base_acc = {}
    for label, run in zip(VARIANTS, runs, strict=True):
        acc = run.metrics.get("test_accuracy")
        ref = base_acc.setdefault("wd" if "wd=" in label else "", acc)
        print(f"| {label} | {acc:.4f} | {100 * (acc - ref):+.1f} | "
              f"{run.metrics.get('train_time_s', 0):.0f} s |")


if __name__ == "__main__":
    main()
