"""Detection training throughput: convbench's engine against a plain torchvision-style loop,
and COCO evaluation: faster-coco-eval against pycocotools.

Measured in one run, on the same Mask R-CNN (convbench's builder, same seed), batch size,
image size, synthetic layout pages, optimiser (SGD with momentum, weight decay, linear
warm-up, gradient clipping at the engine's default 10) and random horizontal flips:

* convbench engine — `convbench.detection.train_detector`, images/s of its second pass over
  the pages (warm caches; checkpoints are not counted, as in every run's epoch rows);
* plain loop — in the style of torchvision's detection references: a Dataset that opens each
  page's PNG and turns its COCO polygons into masks, a DataLoader with one worker per core and
  a tuple collate, the model resizing the pages itself, ``loss.item()`` every step.

Rounds alternate which contestant goes first, so load from other work on the machine hits
both alike; the median of the rounds' ratios is the figure. Then the last engine run's detector
predicts every page and both COCO backends score the same predictions (median of repeats).

    python benchmarks/detect_throughput.py [--pages 24] [--size 320] [--batch 2] [--rounds 5]

Target: engine >= 1.0x the plain loop.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from throughput import cpu_flags
from torch.utils.data import DataLoader, Dataset

from convbench.detection.config import build
from convbench.detection.data import load_dataset, load_split
from convbench.detection.evaluate import coco_metrics, predict_pages
from convbench.detection.loader import PageTensors
from convbench.detection.model import build_detector
from convbench.detection.predict import load_detector
from convbench.detection.synth import synthesize
from convbench.detection.task import optim_configs
from convbench.detection.train import train_detector
from convbench.training.device import set_threads
from convbench.training.optim import make_optimizer
from convbench.training.schedules import make_schedule


class CocoPages(Dataset):
    """Pages read per item, the way torchvision's detection references read COCO."""

    def __init__(self, annotations: Path, image_ids: list[int], hflip: bool):
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' loading chatter
            self.coco = COCO(str(annotations))
        self.ids, self.root, self.hflip = image_ids, annotations.parent, hflip

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        info = self.coco.loadImgs(self.ids[i])[0]
        image = Image.open(self.root / info["file_name"]).convert("RGB")
        w, h = image.size
        anns = [a for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=info["id"]))
                if not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        masks = torch.stack([torch.from_numpy(mask_utils.decode(mask_utils.merge(
            mask_utils.frPyObjects(a["segmentation"], h, w)))) for a in anns]) if anns else \
            torch.zeros((0, h, w), dtype=torch.uint8)
        keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        target = {"boxes": boxes[keep], "masks": masks[keep],
                  "labels": torch.tensor([a["category_id"] for a in anns])[keep]}
        image = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        if self.hflip and torch.rand(1) < 0.5:
            image = image.flip(-1)
            target["boxes"][:, [0, 2]] = w - target["boxes"][:, [2, 0]]
            target["masks"] = target["masks"].flip(-1)
        return image.float().div_(255), target


def plain_loop(cfg, annotations: Path, train_ids: list[int], classes: int, steps: int,
               warmup: int = 2) -> float:
    """Images/s of the plain loop over ``steps`` steps after ``warmup`` untimed ones (worker
    start-up, first allocations)."""
    t = cfg.train
    loader = DataLoader(CocoPages(annotations, train_ids, t.hflip), batch_size=t.batch_size,
                        shuffle=True, drop_last=True, num_workers=torch.get_num_threads(),
                        persistent_workers=True, collate_fn=_collate)
    torch.manual_seed(t.seed)
    model = build_detector(cfg.model, classes)
    model.train()
    # The engine's optimiser and warm-up schedule, from the same registries.
    opt_cfg, sched_cfg = optim_configs(t)
    opt = make_optimizer(opt_cfg, [p for p in model.parameters() if p.requires_grad])
    sched = make_schedule(sched_cfg, base_lr=t.lr, iters_per_epoch=len(loader),
                          total_iters=warmup + steps)
    seen, start, batches, i = 0, 0.0, iter(loader), 0
    while i < warmup + steps:
        try:
            images, targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            continue
        if i == warmup:
            start, seen = time.perf_counter(), 0
        for group in opt.param_groups:
            group["lr"] = sched.lr_at(i) * group["lr_scale"]
        loss_dict = model(list(images), list(targets))
        loss = sum(loss_dict.values())
        if not np.isfinite(loss.item()):
            raise SystemExit(f"plain loop: loss {loss.item()} at step {i}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        seen += len(images)
        i += 1
    return seen / (time.perf_counter() - start)


def _collate(batch):
    return tuple(zip(*batch, strict=True))


def engine(cfg_dict: dict, store: str) -> tuple[float, str]:
    """Images/s of the engine's second pass over the pages, and the run's artifacts folder."""
    run = train_detector(cfg_dict, store=store, quiet=True)
    return run.epochs[-1]["images_per_s"], run["artifacts"]["weights"].rsplit("/", 1)[0]


def eval_speed(folder: str, annotations: Path, repeats: int) -> dict[str, float]:
    """Seconds per COCO evaluation (boxes and masks) of each backend, on the detections of
    the trained detector on every page; the APs of both must agree."""
    det = load_detector(folder)
    cfg = det.config
    ds = load_dataset(cfg.data)
    data = PageTensors(ds, cfg.model.min_size, cfg.model.max_size, masks=False)
    predicted = predict_pages(det.model, data, det.device, cfg.train.batch_size)
    n = sum(len(p.instances) for p in predicted)
    print(f"\nCOCO evaluation of {n} detections on {len(ds.pages)} pages (boxes + masks):")
    backends = ["pycocotools"] + (["faster-coco-eval"] if find_spec("faster_coco_eval") else [])
    times: dict[str, list[float]] = {b: [] for b in backends}
    aps: dict[str, tuple] = {}
    for r in range(repeats):
        for b in backends[:: 1 if r % 2 == 0 else -1]:
            t0 = time.perf_counter()
            m = coco_metrics(ds, predicted, backend=b)
            times[b].append(time.perf_counter() - t0)
            aps[b] = (m["box_AP"], m["mask_AP"], m["coco_eval_backend"])
    for b in backends:
        print(f"  {aps[b][2]:<26} {statistics.median(times[b]):7.3f} s   "
              f"box AP {aps[b][0]:.6f}  mask AP {aps[b][1]:.6f}")
    return {b: statistics.median(v) for b, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pages", type=int, default=24, help="synthetic pages (train + test)")
    p.add_argument("--size", type=int, default=320, help="page height (px); the model takes "
                   "pages at this size (min_size = page width)")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="engine/plain rounds, alternating "
                   "which goes first")
    p.add_argument("--eval-repeats", type=int, default=5)
    args = p.parse_args()
    threads = set_threads(None)
    tmp = Path(tempfile.mkdtemp(prefix="detect-bench-"))
    annotations = synthesize(tmp / "pages", pages=args.pages, size=args.size, seed=0)
    width = Image.open(next((tmp / "pages").glob("*.png"))).width
    cfg_dict = {
        "data": {"source": "synth", "path": str(tmp / "pages"), "synth_pages": args.pages,
                 "synth_size": args.size, "test_fraction": 0.25},
        "model": {"backbone": args.backbone, "min_size": width, "max_size": args.size},
        "train": {"epochs": 2, "batch_size": args.batch, "hflip": True, "warmup_iters": 5},
        "measure": {"cost": False, "energy": False},
    }
    cfg = build(cfg_dict)
    train_ds, _ = load_split(cfg.data)
    train_ids = [pg.id for pg in train_ds.pages]
    steps = len(train_ids) // args.batch  # one pass, as the engine's timed epoch
    print(f"Mask R-CNN ({args.backbone}, FPN {cfg.model.fpn_channels}) on {len(train_ids)} "
          f"synthetic {width}x{args.size} pages, batch {args.batch}, {threads} threads, "
          f"CPU flags: {cpu_flags()}")
    rates: dict[str, list[float]] = {"convbench engine": [], "plain loop": []}
    folder = ""
    for r in range(args.rounds):
        order = ["convbench engine", "plain loop"][:: 1 if r % 2 == 0 else -1]
        for name in order:
            if name == "plain loop":
                rate = plain_loop(cfg, annotations, train_ids, len(train_ds.classes), steps)
            else:
                rate, folder = engine(cfg_dict, str(tmp / "runs.db"))
            rates[name].append(rate)
        print(f"  round {r + 1}: engine {rates['convbench engine'][-1]:6.2f} images/s, "
              f"plain {rates['plain loop'][-1]:6.2f} images/s")
    ours, plain = (statistics.median(v) for v in rates.values())
    # Each round's pair ran back to back under about the same load: its ratio is the fairer
    # figure on a busy machine.
    paired = statistics.median(a / b for a, b in zip(*rates.values(), strict=True))
    print(f"convbench engine {ours:6.2f} images/s   plain loop {plain:6.2f} images/s "
          f"(medians of {args.rounds} rounds)")
    print(f"ratio: {paired:.2f}x (median of the rounds' ratios; target >= 1.0)")
    times = eval_speed(folder, annotations, args.eval_repeats)
    if len(times) == 2:
        print(f"faster-coco-eval speed-up over pycocotools: "
              f"{times['pycocotools'] / times['faster-coco-eval']:.1f}x")
    else:
        print("faster-coco-eval is not installed: pip install 'convbench[fast-eval]'")


if __name__ == "__main__":
    main()
