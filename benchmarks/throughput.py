"""Training throughput: convbench's engine against the canonical PyTorch loop and the bare step.

Measured in one run, on the same model, batch size and augmentation (random crop with 4 px
padding + horizontal flip):

* convbench — `convbench.train`, images/s of its training epochs (data in memory as uint8,
  batch augmentation as tensor ops, channels_last, bf16 autocast where the CPU has it);
* canonical — the loop of the PyTorch tutorials: a Dataset of PIL images, per-sample
  torchvision transforms, a DataLoader with one worker per core, fp32, NCHW;
* canonical + same precision — the same loop with convbench's channels_last/bf16, to show
  how much of the gain is the data path and how much the arithmetic;
* bare step — forward, backward and optimiser step on one preloaded batch, no data work, with
  convbench's precision settings: the ceiling any data pipeline can reach.

    python benchmarks/throughput.py [--models custom-cnn,B2FL16,resnet20] [--batches 128,256]
                                    [--rounds 3]

Each figure is the median of ``--rounds`` rounds whose order rotates; a ratio is the median of
the rounds' ratios (each round's contestants ran minutes apart under about the same load).

Targets on 2 CPU cores (issue 10), for each model and batch: ≥ 2.5× the canonical loop and
≥ 0.95× the bare step. The engine runs with its static precision/layout choice (amp where
native, channels-last, no compilation), as the baselines do, not with ``auto``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

import convbench
from convbench.config import build
from convbench.data import load_data
from convbench.models import create_model
from convbench.training.device import amp_dtype, autocast, cpuinfo, set_threads


class PilDataset(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x, self.y, self.transform = x.numpy(), y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        img = Image.fromarray(self.x[i, 0])
        return self.transform(img), int(self.y[i])


def _step(model, opt, x, y, dtype):
    with autocast(torch.device("cpu"), dtype):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _fresh(cfg, bundle, channels_last: bool):
    torch.manual_seed(0)
    model = create_model(cfg.model, bundle.num_classes, bundle.channels, bundle.image_size[0])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def canonical(cfg, bundle, steps: int, batch: int, fast: bool) -> float:
    mean, std = bundle.mean[0], bundle.std[0]
    tf = transforms.Compose(
        [
            transforms.RandomCrop(bundle.train.x.shape[-1], padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((mean,), (std,)),
        ]
    )
    loader = DataLoader(
        PilDataset(bundle.train.x, bundle.train.y, tf),
        batch_size=batch,
        shuffle=True,
        num_workers=torch.get_num_threads(),
        drop_last=True,
        persistent_workers=True,
    )
    model, opt = _fresh(cfg, bundle, fast)
    dtype = amp_dtype(torch.device("cpu"), True) if fast else None
    model.train()
    seen, start, it = 0, None, iter(loader)
    for i in range(steps + 2):
        if i == 2:  # skip worker start-up and first-step allocation
            start, seen = time.perf_counter(), 0
        x, y = next(it)
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        _step(model, opt, x, y, dtype)
        seen += len(y)
    return seen / (time.perf_counter() - start)


def bare(cfg, bundle, steps: int, batch: int) -> float:
    model, opt = _fresh(cfg, bundle, True)
    dtype = amp_dtype(torch.device("cpu"), True)
    x = torch.randn(batch, bundle.channels, *bundle.image_size).contiguous(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, bundle.num_classes, (batch,))
    model.train()
    for _ in range(2):
        _step(model, opt, x, y, dtype)
    start = time.perf_counter()
    for _ in range(steps):
        _step(model, opt, x, y, dtype)
    return steps * batch / (time.perf_counter() - start)


def engine(dataset: str, model: str, batch: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run = convbench.train(
            {
                "data": {
                    "dataset": dataset,
                    "val_fraction": 0.0,
                    "test_limit": 512,
                    "train_limit": batch * steps,
                    "augment": {"preset": "standard"},
                },
                "model": {"name": model},
                "optim": {"name": "sgd", "lr": 0.01},
                # The engine's static choice, as the baselines use (no timing, no compile).
                "train": {"epochs": 2, "batch_size": batch, "amp": True,
                          "channels_last": True, "compile": False},
                "measure": {"cost": False},
            },
            store=f"{tmp}/runs.db",
            quiet=True,
        )
        return run.epochs[-1]["images_per_s"]  # the second epoch: warm caches


CANONICAL = "canonical loop (DataLoader, PIL transforms, fp32)"
CANONICAL_FAST = "canonical loop + channels_last/bf16"
BARE = "bare step (one preloaded batch)"


def compare(dataset: str, model: str, batch: int, steps: int,
            rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Images/s of the four contestants for one model and batch (medians over ``rounds``,
    each round in another order, so a burst of other work does not land on one contestant),
    and the medians of each round's ratios of the engine to the others."""
    cfg = build({"data": {"dataset": dataset}, "model": {"name": model}})
    bundle = load_data(cfg.data, seed=0)
    half = steps // 2
    contestants = {
        "convbench engine": lambda: engine(dataset, model, batch, steps),
        CANONICAL: lambda: canonical(cfg, bundle, half, batch, False),
        CANONICAL_FAST: lambda: canonical(cfg, bundle, half, batch, True),
        BARE: lambda: bare(cfg, bundle, steps, batch),
    }
    names = list(contestants)
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        per_round.append({name: contestants[name]() for name in order})
    rates = {name: statistics.median(x[name] for x in per_round) for name in names}
    ratios = {name: statistics.median(x["convbench engine"] / x[name] for x in per_round)
              for name in names[1:]}
    return rates, ratios


def cpu_flags() -> str:
    """The flags that decide the kernels: which kind of machine these figures are from."""
    flags = (cpuinfo("flags") or "").split()
    if not flags:
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="custom-cnn,B2FL16,resnet20",
                   help="comma-separated model names")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--batches", default="128,256", help="comma-separated batch sizes")
    p.add_argument("--steps", type=int, default=40, help="timed steps per contestant")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds per model and batch (medians; the order rotates)")
    args = p.parse_args()
    threads = set_threads(None)
    bf16 = "yes" if amp_dtype(torch.device("cpu"), True) else "no"
    print(f"{args.dataset}, {threads} threads, bf16={bf16}, CPU flags: {cpu_flags()}")
    rows = []
    for model in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            rates, ratios = compare(args.dataset, model, batch, args.steps, args.rounds)
            print(f"\n{model}, batch {batch} (medians of {args.rounds} rounds)")
            for name, rate in rates.items():
                print(f"  {name:<50} {rate:8.0f} images/s")
            rows.append((model, batch, ratios[CANONICAL], ratios[CANONICAL_FAST], ratios[BARE]))
    print("\nmodel        batch  vs canonical  vs canonical+precision  vs bare step")
    for model, batch, canon, fast, bare_ in rows:
        print(f"{model:<12} {batch:>5}  {canon:11.2f}x  {fast:21.2f}x  {bare_:10.2f}x")
    print("targets: >= 2.5x the canonical loop, >= 0.95x the bare step")


if __name__ == "__main__":
    main()
