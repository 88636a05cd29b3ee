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

    python benchmarks/throughput.py [--model custom-cnn] [--dataset fashion-mnist] [--batch 256]

Target on 2 CPU cores (custom-cnn, Fashion-MNIST, batch 256): ≥ 2× canonical, ≥ 0.9× bare.
"""

from __future__ import annotations

import argparse
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
from convbench.training.device import amp_dtype, autocast, set_threads


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
            transforms.RandomCrop(28, padding=4),
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


def engine(args, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run = convbench.train(
            {
                "data": {
                    "dataset": args.dataset,
                    "val_fraction": 0.0,
                    "test_limit": 512,
                    "train_limit": args.batch * steps,
                    "augment": {"preset": "standard"},
                },
                "model": {"name": args.model},
                "optim": {"name": "sgd", "lr": 0.01},
                "train": {"epochs": 2, "batch_size": args.batch},
                "measure": {"cost": False},
            },
            store=f"{tmp}/runs.db",
            quiet=True,
        )
        return run.epochs[-1]["images_per_s"]  # the second epoch: warm caches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="custom-cnn")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=40, help="timed steps per contestant")
    args = p.parse_args()
    threads = set_threads(None)
    cfg = build({"data": {"dataset": args.dataset}, "model": {"name": args.model}})
    bundle = load_data(cfg.data, seed=0)
    canonical_fp32 = "canonical loop (DataLoader, PIL transforms, fp32)"
    canonical_fast = "canonical loop + channels_last/bf16"
    bare_step = "bare step (one preloaded batch)"
    half = args.steps // 2
    rates = {
        "convbench engine": engine(args, args.steps),
        canonical_fp32: canonical(cfg, bundle, half, args.batch, False),
        canonical_fast: canonical(cfg, bundle, half, args.batch, True),
        bare_step: bare(cfg, bundle, args.steps, args.batch),
    }
    bf16 = "yes" if amp_dtype(torch.device("cpu"), True) else "no"
    print(f"{args.model} on {args.dataset}, batch {args.batch}, {threads} threads, bf16={bf16}")
    for name, rate in rates.items():
        print(f"  {name:<50} {rate:8.0f} images/s")
    ours = rates["convbench engine"]
    print(f"ratio vs canonical loop:            {ours / rates[canonical_fp32]:.2f}x  (target >= 2)")
    print(f"ratio vs canonical + same precision:{ours / rates[canonical_fast]:.2f}x")
    print(f"ratio vs bare step:                 {ours / rates[bare_step]:.2f}x  (target >= 0.9)")


if __name__ == "__main__":
    main()
