"""Train a Mask R-CNN / Faster R-CNN on layout data, evaluate it, record it in the store.

Batches come from a stream of per-epoch permutations fixed by the seed, so the batch at
iteration *i* is known without replaying the run: a run resumed from any checkpoint sees
the same pages, flips and learning rates as an uninterrupted one.

>>> run = train_detector({"data": {"synth_pages": 8, "synth_size": 128},
...                       "model": {"min_size": 96, "max_size": 128},
...                       "train": {"iterations": 4}})          # doctest: +SKIP
>>> run.status, "box_AP50" in run.metrics                       # doctest: +SKIP
('completed', True)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from ..config import dump
from ..errors import ConvbenchError, StoreError, WeightsError
from ..measure.energy import EnergyMeter
from ..measure.memory import PeakMemory, memory_in_use
from ..runlog import LOG, append_log
from ..store import Store
from ..training.checkpoint import load_checkpoint, save_checkpoint, save_weights
from ..training.device import environment, select_device, set_threads
from ..training.engine import Run, Stopped, _stop_on_signals
from . import config as dcfg
from .config import DetectConfig, budget
from .data import load_split
from .dataset import DetectionDataset
from .evaluate import evaluate_dataset
from .loader import PageTensors
from .model import build_detector
from .predict import save_predictions

CHECKPOINT, WEIGHTS, CONFIG_FILE, DETECTOR = "last.pt", "model.safetensors", "detect.yaml", \
    "detector.json"
LOSS_KEYS = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
             "loss_rpn_box_reg")


def lr_at(cfg: dcfg.DetectTrainConfig, iteration: int, total: int) -> float:
    """Learning rate at ``iteration``: linear warm-up, then ×gamma at each step fraction.

    >>> c = dcfg.DetectTrainConfig(lr=0.02, warmup_iters=10, steps=[0.5], gamma=0.1)
    >>> round(lr_at(c, 0, 100), 6), lr_at(c, 20, 100), round(lr_at(c, 60, 100), 6)
    (2e-05, 0.02, 0.002)
    """
    factor = 1.0
    if iteration < cfg.warmup_iters:
        alpha = iteration / cfg.warmup_iters
        factor = cfg.warmup_factor * (1 - alpha) + alpha
    for step in cfg.steps:
        if iteration >= round(step * total):
            factor *= cfg.gamma
    return cfg.lr * factor


def batch_pages(iteration: int, batch_size: int, n_pages: int, seed: int) -> list[int]:
    """Page indices of the batch at ``iteration`` (epochs are seeded permutations).

    >>> sorted(batch_pages(0, 2, 4, seed=0) + batch_pages(1, 2, 4, seed=0))
    [0, 1, 2, 3]
    """
    out = []
    for pos in range(iteration * batch_size, (iteration + 1) * batch_size):
        epoch, k = divmod(pos, n_pages)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n_pages)[k]))
    return out


class _Bar:
    """Iteration progress bar on stderr (rich) with one line per finished epoch."""

    def __init__(self, total: int, quiet: bool):
        self.bar = None if quiet else RichProgress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True)
        self.total = total
        self._last = 0.0

    def __enter__(self) -> _Bar:
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task("train", total=self.total, stats="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def update(self, done: int, loss: float, lr: float) -> None:
        if self.bar is not None and (time.monotonic() - self._last > 0.5 or done == self.total):
            self._last = time.monotonic()
            self.bar.update(self.task, completed=done, stats=f"loss {loss:.3f} lr {lr:.2e}")

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text)


class DetectTrainer:
    """One detection run: model, optimiser, data, checkpoints and measurements."""

    def __init__(self, cfg: DetectConfig, store: Store, run_id: str, train_ds: DetectionDataset,
                 test_ds: DetectionDataset, quiet: bool = True,
                 on_iteration: Callable[[int, float], None] | None = None):
        self.cfg, self.store, self.run_id, self.quiet = cfg, store, run_id, quiet
        self.on_iteration = on_iteration
        self.train_ds, self.test_ds = train_ds, test_ds
        self.run_dir = store.run_dir(run_id)
        self.device = select_device(cfg.train.device)
        self.threads = set_threads(cfg.train.threads)
        masks = cfg.model.arch == "maskrcnn"
        self.data = PageTensors(train_ds, cfg.model.min_size, cfg.model.max_size, masks)
        torch.manual_seed(cfg.train.seed)
        self.model = build_detector(cfg.model, len(train_ds.classes)).to(self.device)
        t = cfg.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum,
                                         weight_decay=t.weight_decay)
        self.total_iters, self.budget_epochs = budget(t, len(train_ds.pages))
        self.iters_per_epoch = len(train_ds.pages) / t.batch_size
        self.every = t.checkpoint_every or max(1, math.ceil(self.iters_per_epoch))
        self.state: dict[str, Any] = {"iteration": 0, "train_time_s": 0.0, "energy_j": 0.0,
                                      "losses": [], "epoch_sums": {}, "epoch_time_s": 0.0,
                                      "time_limited": False}
        self.energy_info: dict[str, Any] = {}
        self._meter: EnergyMeter | None = None

    # ---------------------------------------------------------------- state
    def _bank_energy(self, restart: bool) -> None:
        # Energy so far goes into the state, so a checkpoint (and a resumed run) keeps it.
        if self._meter is None:
            return
        self.energy_info = self._meter.stop()
        self.state["energy_j"] += self.energy_info["energy_j"]
        if restart:
            self._meter.start()
        else:
            self._meter = None

    def save(self) -> None:
        self._bank_energy(restart=True)
        save_checkpoint(self.run_dir / CHECKPOINT, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(), "state": self.state})

    def restore(self) -> None:
        ckpt = load_checkpoint(self.run_dir / CHECKPOINT)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise WeightsError(f"Checkpoint of run {self.run_id} does not fit its config "
                               f"({type(err).__name__}). Start a new run instead.") from None
        torch.set_rng_state(ckpt["torch_rng"])
        self.state = ckpt["state"]

    # ---------------------------------------------------------------- loop
    def fit(self) -> str:
        t = self.cfg.train
        n = len(self.data)
        status = "completed"
        if self.cfg.measure.energy:
            self._meter = EnergyMeter(self.device, self.cfg.measure.price_per_kwh)
            self._meter.start()
        self.model.train()
        start_it = self.state["iteration"]
        try:
            with _Bar(self.total_iters, self.quiet) as bar:
                for it in range(start_it, self.total_iters):
                    t0 = time.perf_counter()
                    idx = batch_pages(it, t.batch_size, n, t.seed)
                    flips = (np.random.default_rng([t.seed, it, 1]).random(len(idx)) < 0.5
                             ).tolist() if t.hflip else None
                    images, targets = self.data.batch(idx, flips)
                    images = [im.to(self.device) for im in images]
                    targets = [{k: v.to(self.device) for k, v in tg.items()} for tg in targets]
                    lr = lr_at(t, it, self.total_iters)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    parts = self.model(images, targets)
                    loss = sum(parts.values())
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        status = "diverged"
                        self.state["diverged_iteration"] = it + 1
                        break
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if t.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(
                            [p for g in self.optimizer.param_groups for p in g["params"]],
                            t.grad_clip)
                    self.optimizer.step()
                    dt = time.perf_counter() - t0
                    self._account(it, value, {k: float(v.detach()) for k, v in parts.items()}, lr,
                                  dt)
                    bar.update(it + 1, value, lr)
                    end_of_epoch = ((it + 1) * t.batch_size) // n > (it * t.batch_size) // n
                    last = it + 1 == self.total_iters
                    over_time = t.max_time_s is not None and \
                        self.state["train_time_s"] >= t.max_time_s
                    if end_of_epoch or last or over_time:
                        row = self._epoch_row(it, end_of_epoch)
                        bar.line(f"epoch {row['epoch']}  loss {row['train_loss']:.4f}  "
                                 f"lr {lr:.2e}  {row['time_s']:.1f}s  "
                                 f"{row['iters_per_s']:.2f} it/s")
                    if (it + 1) % self.every == 0 or end_of_epoch or last or over_time:
                        self.save()
                    if over_time and not last:
                        self.state["time_limited"] = True
                        break
                    if self.on_iteration is not None:
                        self.on_iteration(it + 1, value)
        finally:
            self._bank_energy(restart=False)
        return status

    def _account(self, it: int, loss: float, parts: dict[str, float], lr: float,
                 dt: float) -> None:
        s = self.state
        s["iteration"] = it + 1
        s["train_time_s"] += dt
        s["epoch_time_s"] += dt
        s["losses"].append([it + 1, loss])
        sums = s["epoch_sums"]
        sums["n"] = sums.get("n", 0) + 1
        sums["loss"] = sums.get("loss", 0.0) + loss
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        sums["lr"] = lr

    def _epoch_row(self, it: int, end_of_epoch: bool) -> dict[str, Any]:
        t = self.cfg.train
        s = self.state
        sums = s["epoch_sums"]
        count = max(1, sums.get("n", 1))
        # A batch that crosses an epoch border completes the earlier epoch; a run that ends
        # inside an epoch reports that partial epoch under its own number.
        seen = (it + 1) * t.batch_size / len(self.data)
        epoch = int(seen) if end_of_epoch else math.ceil(seen)
        time_s = s["epoch_time_s"]
        row = {"epoch": epoch, "iteration": it + 1, "train_loss": sums.get("loss", 0.0) / count,
               "lr": sums.get("lr"), "time_s": time_s,
               "images_per_s": count * t.batch_size / time_s if time_s > 0 else None,
               "iters_per_s": count / time_s if time_s > 0 else 0.0,
               "memory_bytes": memory_in_use(self.device)}
        row.update({k: sums[k] / count for k in LOSS_KEYS if k in sums})
        self.store.add_epoch(self.run_id, epoch, row)
        s["epoch_sums"], s["epoch_time_s"] = {}, 0.0
        return row

    # ---------------------------------------------------------------- end
    def finish(self) -> dict[str, Any]:
        """Save the weights, evaluate on the test pages, write predictions; return metrics."""
        save_weights(self.run_dir / WEIGHTS, self.model)
        (self.run_dir / DETECTOR).write_text(json.dumps({
            "config": self.cfg.model_dump(mode="json"), "classes": self.train_ds.classes}))
        m = self.cfg.model
        metrics, predicted = evaluate_dataset(self.model, self.test_ds, m.min_size, m.max_size,
                                              self.device, m.arch == "maskrcnn",
                                              self.cfg.train.batch_size)
        save_predictions(self.test_ds, predicted, self.run_dir / "predictions", overlays=4)
        s = self.state
        params = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        kwh = s["energy_j"] / 3.6e6
        metrics.update({
            "classes": self.train_ds.classes, "iterations": s["iteration"],
            "epochs": s["iteration"] * self.cfg.train.batch_size / len(self.data),
            "budget_iterations": self.total_iters, "budget_epochs": self.budget_epochs,
            "batch_size": self.cfg.train.batch_size, "train_images": len(self.train_ds.pages),
            "test_images": len(self.test_ds.pages), "train_time_s": s["train_time_s"],
            "iters_per_s": s["iteration"] / s["train_time_s"] if s["train_time_s"] else None,
            "images_per_s": (s["iteration"] * self.cfg.train.batch_size / s["train_time_s"]
                             if s["train_time_s"] else None),
            "final_train_loss": _tail_mean(s["losses"]),
            "params_total": params, "params_trainable": trainable,
            "energy_j": s["energy_j"], "energy_kwh": kwh,
            "energy_method": self.energy_info.get("energy_method"),
            "energy_estimated": self.energy_info.get("energy_estimated"),
            "cost": kwh * self.cfg.measure.price_per_kwh if self.cfg.measure.energy else None,
            "time_limited": s["time_limited"],
        })
        return metrics


def _tail_mean(losses: list[list[float]], n: int = 20) -> float | None:
    tail = [v for _, v in losses[-n:]]
    return float(np.mean(tail)) if tail else None


def prepare(config: DetectConfig | dict | str | Path | None) -> DetectConfig:
    """Accept a DetectConfig, a dict, a YAML path or None (defaults)."""
    if config is None:
        return DetectConfig()
    if isinstance(config, str | Path):
        return dcfg.load(config)
    if isinstance(config, dict):
        return dcfg.build(config)
    return config


def train_detector(config: DetectConfig | dict | str | Path | None = None, *,
                   store: Store | str | None = None, quiet: bool = True,
                   resume: str | None = None, group_id: str | None = None,
                   on_iteration: Callable[[int, float], None] | None = None,
                   on_data_issues: Callable[[list[str]], None] | None = None) -> Run:
    """Train one detector, evaluate it on the held-out pages and record the run (kind
    ``detect``) in the store; ``resume`` continues a stopped run from its last checkpoint.

    ``on_iteration(iteration, loss)`` is called after every optimiser step (and after any
    checkpoint of that step); raising KeyboardInterrupt there stops the run resumably. A
    stopped run re-raises KeyboardInterrupt or Stopped with the run's id as ``run_id``.

    Bad annotations go to the run's ``train.log`` (every message) and its metrics (counts and
    the first messages); ``on_data_issues(lines)`` gets a few lines about them to show.

    >>> run = train_detector("examples/detect-synth.yaml")   # doctest: +SKIP
    >>> run.metrics["box_AP50"]                                # doctest: +SKIP
    0.91
    """
    store = store if isinstance(store, Store) else Store(store)
    if resume:
        run_id = store.resolve_id(resume)
        stored = store.get_run(run_id)
        if stored["kind"] != "detect":
            raise StoreError(f"Run {run_id} is a {stored['kind']} run, not a detection run.")
        if stored["status"] == "completed":
            raise StoreError(f"Run {run_id} already completed; nothing to resume.")
        cfg = dcfg.build(stored["config"], source=f"run {run_id}")
    else:
        cfg = prepare(config)
    train_ds, test_ds = load_split(cfg.data)
    if not resume:
        device = select_device(cfg.train.device)
        env = environment(device, set_threads(cfg.train.threads))
        run_id = store.create_run(name=cfg.name, config=cfg.model_dump(mode="json"),
                                  seed=cfg.train.seed, env=env, kind="detect",
                                  device=str(device), group_id=group_id)
    store.update(run_id, metrics=train_ds.issue_metrics())
    if train_ds.issues:
        log = store.run_dir(run_id) / LOG
        append_log(log, [f"data: {train_ds.issue_summary()}", *train_ds.notes])
        if on_data_issues is not None:
            on_data_issues(train_ds.issue_report(log))
    peak = PeakMemory(select_device(cfg.train.device))
    peak.start()
    try:
        trainer = DetectTrainer(cfg, store, run_id, train_ds, test_ds, quiet, on_iteration)
        if resume:
            trainer.restore()
            epochs_done = math.floor(trainer.state["iteration"] * cfg.train.batch_size
                                     / len(train_ds.pages))
            store.truncate_epochs(run_id, epochs_done)
            store.update(run_id, status="running")
        else:
            (trainer.run_dir / CONFIG_FILE).write_text(dump(cfg))
        with _stop_on_signals():
            status = trainer.fit()
            metrics = trainer.finish() if status == "completed" else {
                "iterations": trainer.state["iteration"],
                "train_time_s": trainer.state["train_time_s"],
                "diverged_iteration": trainer.state.get("diverged_iteration")}
    except (KeyboardInterrupt, Stopped) as stop:
        store.update(run_id, status="stopped", ended=True)
        stop.run_id = run_id  # the caller names the run to resume
        raise
    except ConvbenchError as err:
        store.update(run_id, status="failed", metrics={"error": str(err)}, ended=True)
        raise
    except Exception as err:
        store.update(run_id, status="failed", metrics={"error": repr(err)}, ended=True)
        raise
    finally:
        memory = peak.stop()
    metrics.update(memory)
    run_dir = trainer.run_dir
    losses = run_dir / "losses.json"
    losses.write_text(json.dumps(trainer.state["losses"]))
    artifacts = {k: str(run_dir / f) for k, f in
                 (("checkpoint", CHECKPOINT), ("weights", WEIGHTS), ("config", CONFIG_FILE),
                  ("detector", DETECTOR), ("losses", "losses.json"), ("log", LOG),
                  ("predictions", "predictions")) if (run_dir / f).exists()}
    store.update(run_id, status=status, metrics=metrics, artifacts=artifacts, ended=True)
    return Run(store.get_run(run_id))
