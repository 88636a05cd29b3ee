"""The fit loop: one training run from a :class:`RunConfig` to a completed run in the store.

>>> import convbench
>>> run = convbench.train({"data": {"dataset": "digits"}, "model": {"name": "B2FL8"},
...                        "train": {"epochs": 1}}, quiet=True)   # doctest: +SKIP
>>> run.status, run.metrics["test_accuracy"] > 0.5                 # doctest: +SKIP
('completed', True)
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import config as cfgmod
from ..config import RunConfig
from ..data import DataBundle, Split, load_data
from ..errors import ConvbenchError, StoreError
from ..measure import EnergyMeter, PeakMemory, classification_metrics, measure_model
from ..models import create_model, ignored_fields_note, input_requirements, resolve
from ..results import Run
from ..runlog import LOG, append_log
from ..store import Store
from .augment import BatchPrep
from .checkpoint import load_checkpoint, save_checkpoint, save_weights
from .device import amp_dtype, autocast, environment, select_device, set_threads
from .optim import OPTIMIZERS, make_optimizer
from .progress import Progress
from .schedules import SCHEDULES, make_schedule

LAST, BEST = "last.pt", "best.safetensors"

# Called after every optimiser step with (lr, loss, logits, labels); True ends the epoch early.
BatchHook = Callable[[float, torch.Tensor, torch.Tensor, torch.Tensor], bool]
# Called after every finished epoch with (epoch, row); True stops the run (status "stopped").
EpochHook = Callable[[int, dict], bool]


class Stopped(Exception):
    """SIGTERM/SIGINT during a run: the last epoch checkpoint stays, the run can be resumed."""


@dataclass
class FitState:
    """Everything that must survive a kill; saved in the epoch checkpoint."""

    epoch: int = 0
    iteration: int = 0
    best_val: float | None = None
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    train_time_s: float = 0.0
    energy_j: float = 0.0
    time_to_target_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _seed_for(seed: int, epoch: int, stream: int) -> int:
    # Each epoch's shuffling, augmentation and dropout get their own seed, so a run resumed at an
    # epoch boundary replays exactly what the uninterrupted run would have done.
    return (seed * 1_000_003 + epoch * 7919 + stream) % (2**63)


def _batches(n: int, batch_size: int) -> int:
    # A trailing batch of one sample breaks BatchNorm in train mode; drop it.
    full, rest = divmod(n, batch_size)
    return max(1, full + (1 if rest > 1 else 0))


class Trainer:
    """Holds what one run needs; :meth:`fit` runs the epochs. Use :func:`train`."""

    def __init__(
        self, cfg: RunConfig, store: Store, run_id: str, bundle: DataBundle, quiet: bool = False
    ):
        self.cfg, self.store, self.run_id, self.bundle = cfg, store, run_id, bundle
        self.quiet = quiet
        self.run_dir = store.run_dir(run_id)
        t = cfg.train
        self.device = select_device(t.device)
        self.threads = set_threads(t.threads)
        self.amp = amp_dtype(self.device, t.amp)
        channels, side = input_requirements(cfg.model, bundle.image_size[0], bundle.channels)
        self.input_shape = (channels, side, side)
        torch.manual_seed(t.seed)
        self.model = create_model(cfg.model, bundle.num_classes, channels, side).to(self.device)
        if t.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.prep = BatchPrep(
            cfg.data.augment,
            in_channels=bundle.channels,
            channels=channels,
            side=side,
            mean=bundle.mean,
            std=bundle.std,
            device=self.device,
            channels_last=t.channels_last,
        )
        self.iters_per_epoch = _batches(len(bundle.train), t.batch_size)
        self.optimizer = make_optimizer(cfg.optim, self._param_groups())
        self.schedule = make_schedule(
            cfg.schedule,
            base_lr=cfg.optim.lr,
            iters_per_epoch=self.iters_per_epoch,
            total_iters=self.iters_per_epoch * t.epochs,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.state = FitState()
        # Small data sets live on the device as uint8, so batches never cross the bus.
        self.train_x = self._on_device(bundle.train.x)

    def _param_groups(self):
        groups = getattr(self.model, "param_groups", None)
        return (
            groups()
            if callable(groups)
            else [p for p in self.model.parameters() if p.requires_grad]
        )

    def _on_device(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and x.numel() < 2**31:
            return x.to(self.device)
        return x

    # ----- checkpoints -------------------------------------------------------------------
    def save(self) -> None:
        save_checkpoint(
            self.run_dir / LAST,
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "state": self.state.__dict__,
            },
        )

    def restore(self) -> None:
        ckpt = load_checkpoint(self.run_dir / LAST)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state = FitState(**ckpt["state"])

    # ----- one epoch ---------------------------------------------------------------------
    def train_epoch(
        self, epoch: int, progress: Progress, on_batch: BatchHook | None = None
    ) -> dict[str, float]:
        t, n = self.cfg.train, len(self.bundle.train)
        model, opt = self.model, self.optimizer
        start_hook = getattr(model, "on_epoch_start", None)
        if callable(start_hook):  # transfer learning: gradual unfreezing (models/transfer.py)
            start_hook(epoch, opt)
        model.train()
        order = torch.randperm(
            n, generator=torch.Generator().manual_seed(_seed_for(t.seed, epoch, 0))
        )
        aug = torch.Generator().manual_seed(_seed_for(t.seed, epoch, 1))
        torch.manual_seed(_seed_for(t.seed, epoch, 2))
        y_all = self.bundle.train.y
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        start = time.perf_counter()
        progress.start_epoch(epoch, self.iters_per_epoch)
        for b in range(self.iters_per_epoch):
            idx = order[b * t.batch_size : (b + 1) * t.batch_size]
            x = self.prep(self.train_x[idx.to(self.train_x.device)], train=True, generator=aug)
            y = y_all[idx].to(self.device, non_blocking=True)
            lr = self.schedule.lr_at(self.state.iteration)
            for group in opt.param_groups:
                group["lr"] = lr * group["lr_scale"]
            with autocast(self.device, self.amp):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=t.label_smoothing)
            opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.cfg.optim.grad_clip:
                self.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.optim.grad_clip)
            self.scaler.step(opt)
            self.scaler.update()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(idx)
            self.state.iteration += 1
            if on_batch is not None and on_batch(lr, loss.detach(), logits.detach(), y):
                break  # e.g. the LR range test: divergence or its iteration budget
            if progress.due() or b == self.iters_per_epoch - 1:
                # The only host sync of the loop, a few times a second at most.
                mean_loss = loss_sum.item() / seen
                if not math.isfinite(mean_loss):
                    return {"train_loss": mean_loss}
                progress.update(b + 1, loss=mean_loss, acc=correct.item() / seen, lr=lr)
        elapsed = time.perf_counter() - start
        return {
            "train_loss": loss_sum.item() / seen,
            "train_accuracy": correct.item() / seen,
            "lr": lr,
            "time_s": elapsed,
            "images_per_s": seen / elapsed,
        }

    @torch.inference_mode()
    def logits(self, split: Split) -> torch.Tensor:
        self.model.eval()
        outs = []
        bs = self.cfg.train.eval_batch_size
        for i in range(0, len(split), bs):
            x = self.prep(split.x[i : i + bs], train=False)
            with autocast(self.device, self.amp):
                outs.append(self.model(x).float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, self.bundle.num_classes)

    def validate(self) -> dict[str, float | None]:
        val = self.bundle.val
        if len(val) == 0:
            return {"val_loss": None, "val_accuracy": None}
        logits = self.logits(val)
        return {
            "val_loss": F.cross_entropy(logits, val.y).item(),
            "val_accuracy": (logits.argmax(1) == val.y).float().mean().item(),
        }

    # ----- the run -----------------------------------------------------------------------
    def fit(self, on_epoch: EpochHook | None = None) -> str:
        """Train the remaining epochs; return the final status (``on_epoch`` may stop early)."""
        t, s = self.cfg.train, self.state
        stop_metric = t.early_stopping.metric
        memory = PeakMemory(self.device)
        meter = EnergyMeter(
            str(self.device), self.cfg.measure.price_per_kwh, self.cfg.measure.grid_gco2_per_kwh
        )
        with Progress(self.cfg.train.epochs, quiet=self.quiet) as progress:
            memory.start()
            meter.start()
            try:
                for epoch in range(s.epoch + 1, t.epochs + 1):
                    row = self.train_epoch(epoch, progress)
                    if not math.isfinite(row["train_loss"]):
                        self._log(f"epoch {epoch}: loss became {row['train_loss']}; diverged")
                        s.extra["diverged_epoch"] = epoch
                        return "diverged"
                    row |= self.validate()
                    s.epoch, s.train_time_s = epoch, s.train_time_s + row["time_s"]
                    self._track_best(row, epoch)
                    self.schedule.on_epoch_end(row["val_loss"])
                    self.store.add_epoch(self.run_id, epoch, row)
                    progress.end_epoch(epoch, row)
                    self._log(_epoch_line(epoch, row))
                    self.save()
                    if on_epoch is not None and on_epoch(epoch, row):
                        self._log(f"stopped after epoch {epoch} by the caller (search pruner)")
                        return "stopped"
                    if t.early_stopping.enabled and s.bad_epochs >= t.early_stopping.patience:
                        self._log(
                            f"early stop after epoch {epoch}: no {stop_metric} gain "
                            f"for {s.bad_epochs} epochs"
                        )
                        break
                    if t.max_time_s and s.train_time_s >= t.max_time_s:
                        self._log(f"time budget {t.max_time_s}s reached after epoch {epoch}")
                        break
            finally:
                energy = meter.stop()
                s.energy_j += energy["energy_j"]
                s.extra["energy"] = energy
                s.extra["peak_memory"] = memory.stop()
        return "completed"

    def _track_best(self, row: dict, epoch: int) -> None:
        s, es = self.state, self.cfg.train.early_stopping
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
            save_weights(self.run_dir / BEST, self.model)
        else:
            s.bad_epochs += 1

    def finish(self) -> dict[str, Any]:
        """Test metrics (with the best epoch's weights) and the cost figures."""
        s, bundle = self.state, self.bundle
        best = self.run_dir / BEST
        if best.exists():
            from safetensors.torch import load_file

            self.model.load_state_dict(load_file(best))
        logits = self.logits(bundle.test)
        metrics = classification_metrics(logits, bundle.test.y, bundle.num_classes)
        metrics = {
            f"test_{k}" if k in ("accuracy", "loss", "top5") else k: v for k, v in metrics.items()
        }
        energy = s.extra.get("energy", {})
        metrics |= {
            "classes": bundle.classes,
            "best_val_accuracy": s.best_val_accuracy,
            "best_epoch": s.best_epoch,
            "epochs_run": s.epoch,
            "train_time_s": s.train_time_s,
            "time_to_target_s": s.time_to_target_s,
            "skipped_images": bundle.skipped,
            "images_per_s": _mean_rate(self.store.get_run(self.run_id)["epochs"]),
            **s.extra.get("peak_memory", {}),
            **_energy_total(s.energy_j, energy, self.cfg),
        }
        metrics |= measure_model(
            self.model,
            self.input_shape,
            self.device,
            self.cfg.measure,
            weights_path=best if best.exists() else None,
            timed=self.cfg.measure.cost,
        )
        return metrics

    def _log(self, line: str) -> None:
        append_log(self.run_dir / LOG, [line])


def _epoch_line(epoch: int, row: dict) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in {"epoch": epoch, **row}.items()
    )


def _mean_rate(epochs: list[dict]) -> float | None:
    rates = [e["images_per_s"] for e in epochs if e.get("images_per_s")]
    return sum(rates) / len(rates) if rates else None


def _energy_total(energy_j: float, last: dict, cfg: RunConfig) -> dict[str, Any]:
    kwh = energy_j / 3.6e6
    gco2 = cfg.measure.grid_gco2_per_kwh
    return {
        "energy_j": energy_j,
        "energy_kwh": kwh,
        "energy_method": last.get("energy_method"),
        "energy_estimated": last.get("energy_estimated"),
        "cost": kwh * cfg.measure.price_per_kwh,
        "co2_g": kwh * gco2 if gco2 is not None else None,
    }


@contextmanager
def _stop_on_signals():
    """Turn SIGTERM into :class:`Stopped` (Ctrl-C already raises KeyboardInterrupt)."""

    def handler(signum, frame):
        raise Stopped(signal.Signals(signum).name)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def prepare_config(config: RunConfig | dict | str | Path) -> RunConfig:
    """Accept a RunConfig, a dict or a YAML path; expand model shorthands."""
    if isinstance(config, (str, Path)):
        cfg = cfgmod.load(config)
    elif isinstance(config, dict):
        cfg = cfgmod.build(config)
    else:
        cfg = config
    # Unknown optimiser or schedule names fail here, before data is loaded or a run stored.
    OPTIMIZERS.get(cfg.optim.name)
    SCHEDULES.get(cfg.schedule.name)
    return cfg.model_copy(update={"model": resolve(cfg.model)})


def train(
    config: RunConfig | dict | str | Path | None = None,
    *,
    store: Store | str | None = None,
    quiet: bool = True,
    resume: str | None = None,
    group_id: str | None = None,
    on_epoch: EpochHook | None = None,
) -> Run:
    """Train one network and record everything in the store; return the stored run.

    ``resume`` continues a killed or stopped run from its last epoch checkpoint; it ends with
    the same numbers an uninterrupted run of the same seed gives.

    >>> run = train({"model": {"name": "simple-cnn"}, "train": {"epochs": 1}})  # doctest: +SKIP
    >>> run.status                                                               # doctest: +SKIP
    'completed'
    """
    store = store if isinstance(store, Store) else Store(store)
    if resume:
        run_id = store.resolve_id(resume)
        stored = store.get_run(run_id)
        if stored["status"] == "completed":
            raise StoreError(f"Run {run_id} already completed; nothing to resume.")
        cfg = cfgmod.build(stored["config"], source=f"run {run_id}")
    else:
        if config is None:
            config = {}
        cfg = prepare_config(config)
    bundle = load_data(cfg.data, cfg.train.seed)
    lr_bounds = None
    if not resume and cfg.schedule.bounds == "auto":
        from .lr_finder import auto_bounds  # lr_finder builds on this module

        cfg, lr_bounds = auto_bounds(cfg, bundle, store, group_id=group_id, quiet=quiet)
    if not resume:
        device = select_device(cfg.train.device)
        env = environment(device, set_threads(cfg.train.threads))
        run_id = store.create_run(
            name=cfg.name,
            config=cfg.model_dump(mode="json"),
            seed=cfg.train.seed,
            env=env,
            kind="train",
            device=str(device),
            group_id=group_id,
        )
        if lr_bounds:
            store.update(run_id, metrics={"lr_bounds": lr_bounds})
    try:
        trainer = Trainer(cfg, store, run_id, bundle, quiet=quiet)
        if resume:
            trainer.restore()
            store.truncate_epochs(run_id, trainer.state.epoch)
            store.update(run_id, status="running")
            trainer._log(f"resumed after epoch {trainer.state.epoch}")
        else:
            (trainer.run_dir / "config.yaml").write_text(cfgmod.dump(cfg))
            for note in bundle.notes:
                trainer._log(note)
            if note := ignored_fields_note(cfg.model):
                trainer._log(note)
                if not quiet:
                    print(note, file=sys.stderr, flush=True)
        with _stop_on_signals():
            status = trainer.fit(on_epoch)
            metrics = (
                trainer.finish()
                if status == "completed"
                else {
                    "epochs_run": trainer.state.epoch,
                    "train_time_s": trainer.state.train_time_s,
                    "diverged_epoch": trainer.state.extra.get("diverged_epoch"),
                }
            )
    except (KeyboardInterrupt, Stopped) as stop:
        store.update(run_id, status="stopped", ended=True)
        stop.run_id = run_id  # the CLI names it in its "continue with --resume" line
        raise
    except ConvbenchError as err:
        store.update(run_id, status="failed", metrics={"error": str(err)}, ended=True)
        raise
    except Exception as err:
        store.update(run_id, status="failed", metrics={"error": repr(err)}, ended=True)
        raise
    run_dir = trainer.run_dir
    artifacts = {
        k: str(run_dir / f)
        for k, f in (
            ("checkpoint", LAST),
            ("best_weights", BEST),
            ("log", LOG),
            ("config", "config.yaml"),
        )
        if (run_dir / f).exists()
    }
    store.update(run_id, status=status, metrics=metrics, artifacts=artifacts, ended=True)
    return Run(store.get_run(run_id))
