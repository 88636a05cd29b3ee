"""Image classification as a :class:`~convbench.training.task.Task`: in-memory uint8 data,
batches prepared and augmented on the device, cross-entropy, validation after every epoch,
early stopping, best-epoch weights and the test metrics.

:class:`ClassificationTrainer` (also ``convbench.training.engine.Trainer``) is the one loop
over this task, built from a :class:`RunConfig` and a data bundle.

>>> batches_per_epoch(100, 32), batches_per_epoch(97, 32)
(4, 3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import RunConfig
from ..data import DataBundle, Split
from ..measure import classification_metrics
from ..models import create_model, input_requirements
from ..store import Store
from .augment import BatchPrep, mix_batch
from .checkpoint import save_weights
from .device import amp_dtype, autocast, select_device, set_threads, static_choice
from .ema import WeightEma
from .task import FitState, Step
from .trainer import Trainer
from .tta import tta_logits

BEST = "best.safetensors"


def seed_for(seed: int, epoch: int, stream: int) -> int:
    """The seed of one random stream of one epoch (0: order, 1: augmentation, 2: dropout).

    Each epoch's shuffling, augmentation and dropout get their own seed, so a run resumed at
    an epoch boundary replays exactly what the uninterrupted run would have done.

    >>> seed_for(0, 1, 0) != seed_for(0, 2, 0)
    True
    """
    return (seed * 1_000_003 + epoch * 7919 + stream) % (2**63)


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps per epoch over ``n`` samples: a trailing batch of one sample breaks
    BatchNorm in train mode, so it is dropped.

    >>> batches_per_epoch(65, 32), batches_per_epoch(66, 32)
    (2, 3)
    """
    full, rest = divmod(n, batch_size)
    return max(1, full + (1 if rest > 1 else 0))


#: ``train.batch_size: auto`` takes the largest of these that leaves at least
#: ``AUTO_MIN_STEPS`` optimiser steps an epoch: on 2 cores batch 128 trains 1.7–2.4× as many
#: images per second as 32 (docs/training.md, "Batch size and speed"), but a small data set
#: needs the steps more than the speed (digits at 128 would take 10 steps an epoch).
AUTO_BATCHES = (128, 64, 32)
AUTO_MIN_STEPS = 200


def auto_batch_size(n: int) -> int:
    """The batch size ``auto`` gives a training split of ``n`` images.

    >>> auto_batch_size(54_000), auto_batch_size(15_000), auto_batch_size(1_617)
    (128, 64, 32)
    """
    return next((b for b in AUTO_BATCHES if n // b >= AUTO_MIN_STEPS), AUTO_BATCHES[-1])


def with_batch_size(cfg: RunConfig, bundle: DataBundle) -> RunConfig:
    """``cfg`` with ``train.batch_size: auto`` replaced by the number for ``bundle``'s
    training split, so the stored config, the LR range test and the step count all see it."""
    if cfg.train.batch_size != "auto":
        return cfg
    size = auto_batch_size(len(bundle.train))
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"batch_size": size})})


class ClassificationTask:
    """Classification of a :class:`DataBundle` with the model, optimiser and schedule of a
    :class:`RunConfig` (see :class:`~convbench.training.task.Task` for the methods)."""

    checkpoint_every = None  # classification resumes at epoch boundaries only

    def __init__(self, cfg: RunConfig, bundle: DataBundle, run_dir: Path):
        self.cfg, self.bundle, self.run_dir = cfg, bundle, run_dir  # run_dir: best weights
        t = cfg.train
        self.device = select_device(t.device)
        self.threads = set_threads(t.threads)
        self.amp = amp_dtype(self.device, t.amp)
        self.channels_last = static_choice("channels_last", t.channels_last)
        channels, side = input_requirements(cfg.model, bundle.image_size[0], bundle.channels)
        self.input_shape = (channels, side, side)
        self.seed, self.epochs = t.seed, t.epochs
        self.optim_cfg, self.schedule_cfg, self.measure = cfg.optim, cfg.schedule, cfg.measure
        self.prep = BatchPrep(
            cfg.data.augment,
            in_channels=bundle.channels,
            channels=channels,
            side=side,
            mean=bundle.mean,
            std=bundle.std,
            device=self.device,
            channels_last=self.channels_last,
        )
        self.iters_per_epoch = batches_per_epoch(len(bundle.train), t.batch_size)
        self.total_iters = self.iters_per_epoch * t.epochs
        # Small data sets live on the device as uint8, so batches never cross the bus.
        x = bundle.train.x
        on_gpu = self.device.type == "cuda" and x.numel() < 2**31
        self.train_x = x.to(self.device) if on_gpu else x
        self.ema: WeightEma | None = None  # train.ema: built with the model

    # ----- model -------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        c, t = self.input_shape[0], self.cfg.train
        model = create_model(self.cfg.model, self.bundle.num_classes, c, self.input_shape[1])
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if t.ema:
            self.ema = WeightEma(model, t.ema)
        if static_choice("compile", t.compile):
            # In place (after the EMA's copy): the module keeps its class and state_dict
            # names, so checkpoints and weights files are those of an eager run.
            model.compile()
        return model

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The weights evaluation and the best-epoch file use: the EMA's when ``train.ema``."""
        return self.ema.model if self.ema is not None else model

    def param_groups(self, model: nn.Module) -> list:
        groups = getattr(model, "param_groups", None)  # transfer learning: per-part LR scales
        return groups() if callable(groups) else [p for p in model.parameters() if p.requires_grad]

    # ----- one epoch ---------------------------------------------------------------------
    def next_epoch(self, state: FitState) -> int | None:
        return state.epoch + 1 if state.epoch < self.epochs else None

    def start_epoch(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: FitState) -> int:
        start_hook = getattr(model, "on_epoch_start", None)
        if callable(start_hook):  # transfer learning: gradual unfreezing (models/transfer.py)
            start_hook(epoch, optimizer)
        model.train()
        seed = self.cfg.train.seed
        self.order = torch.randperm(
            len(self.bundle.train),
            generator=torch.Generator().manual_seed(seed_for(seed, epoch, 0)),
        )
        self.aug = torch.Generator().manual_seed(seed_for(seed, epoch, 1))
        torch.manual_seed(seed_for(seed, epoch, 2))
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.seen = 0
        return self.iters_per_epoch

    def batch(self, step: int, iteration: int) -> tuple[torch.Tensor, torch.Tensor,
                                                       torch.Tensor]:
        """``(images, labels, targets)``: the targets are the labels, or soft ones for a batch
        that mixup/cutmix blended."""
        bs = self.cfg.train.batch_size
        idx = self.order[step * bs : (step + 1) * bs]
        x = self.prep(self.train_x[idx.to(self.train_x.device)], train=True, generator=self.aug)
        y = self.bundle.train.y[idx].to(self.device, non_blocking=True)
        if not self.prep.plan.mixes:
            return x, y, y
        x, target = mix_batch(x, y, self.bundle.num_classes, self.prep.plan, self.aug)
        return x, y, target

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> Step:
        x, y, target = batch
        with autocast(self.device, self.amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), target,
                               label_smoothing=self.cfg.train.label_smoothing)
        return Step(loss, outputs=(logits.detach(), y))

    def after_step(self, step: Step, lr: float, state: FitState) -> None:
        if self.ema is not None:
            self.ema.update()
        logits, y = step.outputs
        self.loss_sum += step.loss.detach() * len(y)
        self.correct += (logits.argmax(1) == y).sum()
        self.seen += len(y)

    def progress_stats(self) -> dict[str, float]:
        return {"loss": self.loss_sum.item() / self.seen, "acc": self.correct.item() / self.seen}

    def out_of_time(self, state: FitState) -> bool:
        return False  # the time budget is checked at epoch ends (stop_reason)

    def epoch_row(self, state: FitState, lr: float) -> dict[str, Any]:
        elapsed = state.epoch_time_s
        return {
            "train_loss": self.loss_sum.item() / self.seen,
            "train_accuracy": self.correct.item() / self.seen,
            "lr": lr,
            "time_s": elapsed,
            "images_per_s": self.seen / elapsed,
        }

    def end_epoch(self, epoch: int, row: dict[str, Any], model: nn.Module,
                  state: FitState) -> dict[str, Any]:
        model = self.eval_model(model)
        row |= self.validate(model)
        self._track_best(row, epoch, model, state)
        return row

    def stop_reason(self, state: FitState) -> str | None:
        t, epoch = self.cfg.train, state.epoch
        if t.early_stopping.enabled and state.bad_epochs >= t.early_stopping.patience:
            return (f"early stop after epoch {epoch}: no {t.early_stopping.metric} gain "
                    f"for {state.bad_epochs} epochs")
        if t.max_time_s and state.train_time_s >= t.max_time_s:
            return f"time budget {t.max_time_s}s reached after epoch {epoch}"
        return None

    def state_dict(self) -> dict[str, Any]:
        # The rest is per-epoch, rebuilt by start_epoch; the EMA runs across epochs.
        return {"ema": self.ema.state_dict()} if self.ema is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])

    # ----- evaluation --------------------------------------------------------------------
    @torch.inference_mode()
    def logits(self, model: nn.Module, split: Split) -> torch.Tensor:
        """Logits of a split in eval mode, on the CPU (averaged over views with
        ``train.tta``)."""
        model.eval()
        outs = []
        bs = self.cfg.train.eval_batch_size
        forward = (lambda x: tta_logits(model, x)) if self.cfg.train.tta else model
        for i in range(0, len(split), bs):
            x = self.prep(split.x[i : i + bs], train=False)
            with autocast(self.device, self.amp):
                outs.append(forward(x).float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, self.bundle.num_classes)

    def validate(self, model: nn.Module) -> dict[str, float | None]:
        val = self.bundle.val
        if len(val) == 0:
            return {"val_loss": None, "val_accuracy": None}
        logits = self.logits(model, val)
        return {
            "val_loss": F.cross_entropy(logits, val.y).item(),
            "val_accuracy": (logits.argmax(1) == val.y).float().mean().item(),
        }

    def _track_best(self, row: dict, epoch: int, model: nn.Module, s: FitState) -> None:
        es = self.cfg.train.early_stopping
        target = self.cfg.measure.target_accuracy
        acc = row["val_accuracy"]
        if target and acc is not None and acc >= target and s.time_to_target_s is None:
            s.time_to_target_s = s.train_time_s
        if acc is not None and (s.best_val_accuracy is None or acc > s.best_val_accuracy):
            s.best_val_accuracy = acc
        metric = row[es.metric] if row.get(es.metric) is not None else -row["train_loss"]
        sign = -1 if es.metric == "val_loss" and row.get(es.metric) is not None else 1
        score = sign * metric
        if s.best_val is None or score > s.best_val + es.min_delta:
            s.best_val, s.best_epoch, s.bad_epochs = score, epoch, 0
            save_weights(self.run_dir / BEST, model)
        else:
            s.bad_epochs += 1

    def finish(self, model: nn.Module, state: FitState, run_dir: Path, store: Store,
               run_id: str) -> dict[str, Any]:
        """Test metrics with the best epoch's weights, and the run's training figures."""
        bundle = self.bundle
        best = run_dir / BEST
        if best.exists():
            from safetensors.torch import load_file

            model.load_state_dict(load_file(best))
        metrics = classification_metrics(self.logits(model, bundle.test), bundle.test.y,
                                         bundle.num_classes)
        metrics = {
            f"test_{k}" if k in ("accuracy", "loss", "top5") else k: v for k, v in metrics.items()
        }
        return metrics | {
            "classes": bundle.classes,
            "best_val_accuracy": state.best_val_accuracy,
            "best_epoch": state.best_epoch,
            "epochs_run": state.epoch,
            "train_images": len(bundle.train),
            "train_time_s": state.train_time_s,
            "time_to_target_s": state.time_to_target_s,
            "skipped_images": bundle.skipped,
            "images_per_s": _mean_rate(store.get_run(run_id)["epochs"]),
        }

    def cost_weights(self, run_dir: Path) -> Path | None:
        best = run_dir / BEST
        return best if best.exists() else None


def _mean_rate(epochs: list[dict]) -> float | None:
    rates = [e["images_per_s"] for e in epochs if e.get("images_per_s")]
    return sum(rates) / len(rates) if rates else None


class ClassificationTrainer(Trainer):
    """The loop over a :class:`ClassificationTask`, with the classification API the LR range
    test and the tests use (``train_epoch``, ``validate``, ``logits``, ``prep``, ``bundle``).

    >>> trainer = ClassificationTrainer(cfg, store, run_id, bundle, quiet=True)  # doctest: +SKIP
    >>> trainer.train_epoch(1, Progress(1, quiet=True))["train_loss"]          # doctest: +SKIP
    2.28
    """

    def __init__(self, cfg: RunConfig, store: Store, run_id: str, bundle: DataBundle,
                 quiet: bool = False):
        task = ClassificationTask(cfg, bundle, store.run_dir(run_id))
        super().__init__(task, store, run_id, quiet=quiet)
        self.cfg, self.bundle = cfg, bundle
        self.prep, self.input_shape = task.prep, task.input_shape
        self.threads, self.amp = task.threads, task.amp

    def logits(self, split: Split) -> torch.Tensor:
        return self.task.logits(self.task.eval_model(self.model), split)

    def validate(self) -> dict[str, float | None]:
        return self.task.validate(self.task.eval_model(self.model))

