"""Detection (Mask R-CNN / Faster R-CNN on layout pages) as a
:class:`~convbench.training.task.Task` of the one training loop.

Batches come from a stream of per-epoch permutations fixed by the seed, so the batch at
iteration *i* is known without replaying the run: a run resumed from any checkpoint sees the
same pages, flips and learning rates as an uninterrupted one. The budget is in iterations
(:func:`~convbench.detection.config.budget`); an *epoch* of the loop runs up to the next pass
boundary, and a budget may end inside a pass (that partial epoch is stored under its own
number). The optimiser and LR schedule come from the shared registries: SGD and
``warmup-step`` (linear warm-up, then ×gamma at the step fractions) unless configured.

>>> sorted(batch_pages(0, 2, 4, seed=0) + batch_pages(1, 2, 4, seed=0))
[0, 1, 2, 3]
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import MeasureConfig, OptimConfig, ScheduleConfig
from ..measure.memory import memory_in_use
from ..store import Store
from ..training.checkpoint import save_weights
from ..training.device import select_device, set_threads
from ..training.task import FitState, Step
from ..training.trainer import StepHook, Trainer
from .config import DetectConfig, DetectTrainConfig, budget
from .dataset import DetectionDataset
from .evaluate import evaluate_dataset
from .loader import PageTensors
from .model import build_detector
from .predict import save_predictions

WEIGHTS, DETECTOR = "model.safetensors", "detector.json"
LOSS_KEYS = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
             "loss_rpn_box_reg")


def batch_pages(iteration: int, batch_size: int, n_pages: int, seed: int) -> list[int]:
    """Page indices of the batch at ``iteration`` (epochs are seeded permutations).

    >>> batch_pages(0, 3, 4, seed=0) == batch_pages(0, 3, 4, seed=0)
    True
    """
    out = []
    for pos in range(iteration * batch_size, (iteration + 1) * batch_size):
        epoch, k = divmod(pos, n_pages)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n_pages)[k]))
    return out


def _crosses_pass(iteration: int, batch_size: int, n_pages: int) -> bool:
    # True when the batch of `iteration` (0-based) completes a pass over the pages.
    return ((iteration + 1) * batch_size) // n_pages > (iteration * batch_size) // n_pages


def optim_configs(t: DetectTrainConfig) -> tuple[OptimConfig, ScheduleConfig]:
    """The shared trainer's optimiser and LR schedule settings of a detection run.

    >>> optim_configs(DetectTrainConfig())[1].name
    'warmup-step'
    """
    return (OptimConfig(name=t.optimizer, lr=t.lr, momentum=t.momentum,
                        weight_decay=t.weight_decay, grad_clip=t.grad_clip),
            ScheduleConfig(name=t.schedule, milestones=t.steps, gamma=t.gamma,
                           warmup_iters=t.warmup_iters, warmup_factor=t.warmup_factor))


class DetectionTask:
    """Training a detector on ``train_ds`` and evaluating it on ``test_ds``."""

    amp = None  # torchvision's detection heads are trained in float32 here

    def __init__(self, cfg: DetectConfig, train_ds: DetectionDataset, test_ds: DetectionDataset):
        self.cfg, self.train_ds, self.test_ds = cfg, train_ds, test_ds
        t, m = cfg.train, cfg.model
        self.device = select_device(t.device)
        self.threads = set_threads(t.threads)
        self.data = PageTensors(train_ds, m.min_size, m.max_size, m.arch == "maskrcnn")
        self.seed = t.seed
        self.total_iters, self.budget_epochs = budget(t, len(train_ds.pages))
        self.iters_per_epoch = len(train_ds.pages) / t.batch_size
        self.epochs = math.ceil(self.budget_epochs)
        self.checkpoint_every = t.checkpoint_every or max(1, math.ceil(self.iters_per_epoch))
        self.optim_cfg, self.schedule_cfg = optim_configs(t)
        me = cfg.measure
        self.measure = MeasureConfig(price_per_kwh=me.price_per_kwh, cost=me.cost,
                                     latency_repeats=me.latency_repeats,
                                     throughput_batch=me.throughput_batch)
        # Cost probes run on a portrait page at the largest size the model takes unscaled:
        # min_size wide, max_size high (torchvision's resize leaves it as it is).
        self.input_shape = (3, m.max_size, m.min_size)
        self.losses: list[list[float]] = []  # [iteration, loss] of every step
        self.sums: dict[str, float] = {}  # running sums of the epoch in progress
        self.time_limited = False

    def build_model(self) -> nn.Module:
        return build_detector(self.cfg.model, len(self.train_ds.classes)).to(self.device)

    def param_groups(self, model: nn.Module) -> list:
        return [p for p in model.parameters() if p.requires_grad]

    # ----- one epoch ---------------------------------------------------------------------
    def next_epoch(self, state: FitState) -> int | None:
        if state.iteration >= self.total_iters:
            return None
        return state.iteration * self.cfg.train.batch_size // len(self.data) + 1

    def start_epoch(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: FitState) -> int:
        model.train()
        bs, n = self.cfg.train.batch_size, len(self.data)
        it = state.iteration
        while it < self.total_iters - 1 and not _crosses_pass(it, bs, n):
            it += 1
        return it - state.iteration + 1

    def batch(self, step: int, iteration: int) -> tuple[list, list]:
        t = self.cfg.train
        idx = batch_pages(iteration, t.batch_size, len(self.data), t.seed)
        flips = (np.random.default_rng([t.seed, iteration, 1]).random(len(idx)) < 0.5
                 ).tolist() if t.hflip else None
        images, targets = self.data.batch(idx, flips)
        images = [im.to(self.device) for im in images]
        targets = [{k: v.to(self.device) for k, v in tg.items()} for tg in targets]
        return images, targets

    def forward(self, model: nn.Module, batch: tuple[list, list]) -> Step:
        parts = model(*batch)
        loss = sum(parts.values())
        return Step(loss, value=float(loss.detach()), outputs=(parts,))

    def after_step(self, step: Step, lr: float, state: FitState) -> None:
        (parts,) = step.outputs
        self.losses.append([state.iteration, step.value])
        sums = self.sums
        sums["n"] = sums.get("n", 0) + 1
        sums["loss"] = sums.get("loss", 0.0) + step.value
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        sums["lr"] = lr

    def progress_stats(self) -> dict[str, float]:
        # The epoch's running mean, as classification reports (the playground's per-batch
        # points are window means of these); a non-finite batch makes it non-finite at once.
        n = self.sums.get("n", 0)
        return {"loss": self.sums["loss"] / n if n else math.nan}

    def out_of_time(self, state: FitState) -> bool:
        limit = self.cfg.train.max_time_s
        return limit is not None and state.train_time_s >= limit

    def epoch_row(self, state: FitState, lr: float) -> dict[str, Any]:
        bs, n = self.cfg.train.batch_size, len(self.data)
        it = state.iteration - 1
        sums, time_s = self.sums, state.epoch_time_s
        count = max(1, sums.get("n", 1))
        # A batch that crosses an epoch border completes the earlier epoch; a run that ends
        # inside an epoch reports that partial epoch under its own number.
        seen = (it + 1) * bs / n
        epoch = int(seen) if _crosses_pass(it, bs, n) else math.ceil(seen)
        row = {"epoch": epoch, "iteration": it + 1, "train_loss": sums.get("loss", 0.0) / count,
               "lr": sums.get("lr"), "time_s": time_s,
               "images_per_s": count * bs / time_s if time_s > 0 else None,
               "iters_per_s": count / time_s if time_s > 0 else 0.0,
               "memory_bytes": memory_in_use(self.device)}
        row.update({k: sums[k] / count for k in LOSS_KEYS if k in sums})
        self.sums = {}
        return row

    def end_epoch(self, epoch: int, row: dict[str, Any], model: nn.Module,
                  state: FitState) -> dict[str, Any]:
        return row

    def stop_reason(self, state: FitState) -> str | None:
        if self.out_of_time(state) and state.iteration < self.total_iters:
            self.time_limited = True
            return (f"time budget {self.cfg.train.max_time_s}s reached after iteration "
                    f"{state.iteration}")
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"losses": self.losses, "epoch_sums": self.sums,
                "time_limited": self.time_limited}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = state.get("losses", [])
        self.sums = state.get("epoch_sums", {})
        self.time_limited = state.get("time_limited", False)

    # ----- end ---------------------------------------------------------------------------
    def finish(self, model: nn.Module, state: FitState, run_dir: Path, store: Store,
               run_id: str) -> dict[str, Any]:
        """Save the weights, evaluate on the test pages, write predictions; return metrics."""
        save_weights(run_dir / WEIGHTS, model)
        (run_dir / DETECTOR).write_text(json.dumps({
            "config": self.cfg.model_dump(mode="json"), "classes": self.train_ds.classes}))
        m, t = self.cfg.model, self.cfg.train
        metrics, predicted = evaluate_dataset(model, self.test_ds, m.min_size, m.max_size,
                                              self.device, m.arch == "maskrcnn", t.batch_size)
        save_predictions(self.test_ds, predicted, run_dir / "predictions", overlays=4)
        s, bs = state, t.batch_size
        metrics.update({
            "classes": self.train_ds.classes, "iterations": s.iteration,
            "epochs": s.iteration * bs / len(self.data),
            "budget_iterations": self.total_iters, "budget_epochs": self.budget_epochs,
            "batch_size": bs, "train_images": len(self.train_ds.pages),
            "test_images": len(self.test_ds.pages), "train_time_s": s.train_time_s,
            "iters_per_s": s.iteration / s.train_time_s if s.train_time_s else None,
            "images_per_s": s.iteration * bs / s.train_time_s if s.train_time_s else None,
            "final_train_loss": _tail_mean(self.losses),
            "time_limited": self.time_limited,
        })
        return metrics

    def cost_weights(self, run_dir: Path) -> Path | None:
        return None  # the weights file is WEIGHTS (save_weights); size from a temporary copy


def _tail_mean(losses: list[list[float]], n: int = 20) -> float | None:
    tail = [v for _, v in losses[-n:]]
    return float(np.mean(tail)) if tail else None


class DetectTrainer(Trainer):
    """The one loop over a :class:`DetectionTask`; ``on_iteration(iteration, loss)`` is
    called after every optimiser step (and after any checkpoint of that step).

    >>> trainer = DetectTrainer(cfg, store, run_id, train_ds, test_ds)   # doctest: +SKIP
    >>> trainer.fit()                                                   # doctest: +SKIP
    'completed'
    """

    def __init__(self, cfg: DetectConfig, store: Store, run_id: str, train_ds: DetectionDataset,
                 test_ds: DetectionDataset, quiet: bool = True,
                 on_iteration: StepHook | None = None):
        super().__init__(DetectionTask(cfg, train_ds, test_ds), store, run_id, quiet=quiet,
                         on_step=on_iteration)
