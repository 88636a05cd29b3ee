"""Sharing the cores: what one training gets when another runs beside it.

On a 2-core machine a convbench run often shares the CPU with other torch work (a second run,
a search worker, the playground, the test suite). OpenMP threads that spin while they wait
take the cores the other process needs, and both can collapse to a small fraction of their
solo speed. convbench sets ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep while they wait) unless
the user set a policy; this script measures why, in one run:

* solo — one training alone, with the OpenMP default (spin, then sleep) and with PASSIVE;
* pair — two identical trainings started together, for each policy: images/s of each.

It prints each run's images/s and the share of its solo speed each of the pair gets
(the ideal on a machine of N cores shared by two runs is about 50 %).

    python benchmarks/sharing.py [--model custom-cnn] [--images 6000] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs in a child process so that each one loads libgomp with its own policy: convbench sets
# PASSIVE when imported, so the "default" child removes it again before torch is imported.
CHILD = """
import json, os, sys
import convbench
policy, store, model, images, batch = sys.argv[1:6]
if policy == "default":
    os.environ.pop("OMP_WAIT_POLICY", None)
cfg = {"data": {"dataset": "fashion-mnist", "train_limit": int(images)},
       "model": {"name": model}, "train": {"epochs": 1, "batch_size": int(batch)},
       "measure": {"cost": False}}
run = convbench.train(cfg, store=store, quiet=True)
print(json.dumps({"images_per_s": run.metrics["images_per_s"],
                  "policy": os.environ.get("OMP_WAIT_POLICY", "default")}))
"""


def _start(policy: str, store: Path, args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, policy, str(store), args.model, str(args.images),
         str(args.batch)], stdout=subprocess.PIPE, text=True)


def _rate(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"a training failed (exit {proc.returncode}); run it alone to see why")
    return float(json.loads(out.strip().splitlines()[-1])["images_per_s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="custom-cnn")
    p.add_argument("--images", type=int, default=6000, help="training images per run")
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for policy in ("default", "passive"):
            solo = _rate(_start(policy, Path(tmp) / f"{policy}-solo.db", args))
            pair = [_start(policy, Path(tmp) / f"{policy}-pair{i}.db", args) for i in (0, 1)]
            rates = [_rate(proc) for proc in pair]
            rows.append((policy, solo, rates))
    print(f"{args.model}, batch {args.batch}, {args.images} images, 1 epoch")
    print(f"{'OpenMP wait policy':<20}{'solo img/s':>12}{'pair img/s (each)':>22}"
          f"{'share of solo':>16}")
    for policy, solo, rates in rows:
        each = " / ".join(f"{r:,.0f}" for r in rates)
        share = " / ".join(f"{r / solo:.0%}" for r in rates)
        print(f"{policy:<20}{solo:>12,.0f}{each:>22}{share:>16}")


if __name__ == "__main__":
    main()
