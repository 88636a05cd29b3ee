"""Training images/s against batch size for the registry's small models: the table in
docs/training.md ("Batch size") that the default `train.batch_size` is chosen from.

Each cell is the second epoch of a real `convbench.train` run of that model and batch (the
engine of benchmarks/throughput.py, static precision/layout, no compilation) over
``--steps`` batches of the data set, so small batches pay their per-step overheads exactly as
a run does. The CPU flags are printed with the table: the two kinds of machine differ.

    python benchmarks/batch_size.py [--models custom-cnn,B2FL16,resnet20]
                                    [--batches 16,32,64,128,256,512] [--dataset fashion-mnist]
"""

from __future__ import annotations

import argparse

from throughput import cpu_flags, engine

from convbench.training.device import set_threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="custom-cnn,B2FL16,resnet20")
    p.add_argument("--batches", default="16,32,64,128,256,512")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--images", type=int, default=8192,
                   help="images per timed epoch (at least one batch)")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    threads = set_threads(None)
    print(f"{args.dataset}, {threads} threads, CPU flags: {cpu_flags()}; images/s of training")
    print(f"{'model':<12}" + "".join(f"{b:>8}" for b in batches) + "   best")
    for model in args.models.split(","):
        rates = [engine(args.dataset, model, b, max(1, args.images // b)) for b in batches]
        best = batches[max(range(len(rates)), key=rates.__getitem__)]
        print(f"{model:<12}" + "".join(f"{r:8.0f}" for r in rates) + f"   {best}")


if __name__ == "__main__":
    main()
