"""Train a Mask R-CNN / Faster R-CNN on layout data, evaluate it, record it in the store.

The training itself is the shared loop (:mod:`convbench.training.trainer`) over a
:class:`~convbench.detection.task.DetectionTask`: a run resumed from any checkpoint sees the
same pages, flips and learning rates as an uninterrupted one.

>>> run = train_detector({"data": {"synth_pages": 8, "synth_size": 128},
...                       "model": {"min_size": 96, "max_size": 128},
...                       "train": {"iterations": 4}})          # doctest: +SKIP
>>> run.status, "box_AP50" in run.metrics                       # doctest: +SKIP
('completed', True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from ..config import dump
from ..results import Run
from ..runlog import LOG
from ..store import Store
from ..training.device import select_device, set_threads
from ..training.lifecycle import recorded_run, resumed_config, stored
from ..training.trainer import CHECKPOINT, StepHook
from . import config as dcfg
from .config import DetectConfig
from .data import load_split
from .task import DETECTOR, WEIGHTS, DetectTrainer

CONFIG_FILE = "detect.yaml"


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
                   on_iteration: StepHook | None = None,
                   on_data_issues: Callable[[list[str]], None] | None = None) -> Run:
    """Train one detector, evaluate it on the held-out pages and record the run (kind
    ``detect``) in the store; ``resume`` continues a stopped run from its last checkpoint.

    ``on_iteration(iteration, sample)`` is called after every optimiser step (and after any
    checkpoint of that step; ``sample()`` reads its loss and LR); raising KeyboardInterrupt
    there stops the run resumably. A stopped run re-raises KeyboardInterrupt or Stopped with
    the run's id as ``run_id``.

    Bad annotations go to the run's ``train.log`` (every message) and its metrics (counts and
    the first messages); ``on_data_issues(lines)`` gets a few lines about them to show.

    >>> run = train_detector("examples/detect-synth.yaml")   # doctest: +SKIP
    >>> run.metrics["box_AP50"]                                # doctest: +SKIP
    0.91
    """
    store = store if isinstance(store, Store) else Store(store)
    if resume:
        resume, cfg = resumed_config(store, resume, "detect", dcfg.build, "detection")
    else:
        cfg = prepare(config)
    train_ds, test_ds = load_split(cfg.data)
    device = select_device(cfg.train.device)
    with recorded_run(store, "detect", cfg.model_dump(mode="json"), seed=cfg.train.seed,
                      name=cfg.name, device=device, threads=set_threads(cfg.train.threads),
                      group_id=group_id, resume=resume, energy=cfg.measure.energy,
                      price_per_kwh=cfg.measure.price_per_kwh) as run:
        store.update(run.id, metrics=train_ds.issue_metrics())
        if train_ds.issues:
            run.log(f"data: {train_ds.issue_summary()}", *train_ds.notes)
            if on_data_issues is not None:
                on_data_issues(train_ds.issue_report(run.dir / LOG))
        trainer = DetectTrainer(cfg, store, run.id, train_ds, test_ds, quiet, on_iteration)
        trainer.energy_so_far = run.energy_so_far
        if resume and trainer.restore():
            run.energy_before_j = trainer.state.energy_j
            run.energy_before_s = trainer.state.energy_s
            epochs_done = math.floor(trainer.state.iteration * cfg.train.batch_size
                                     / len(train_ds.pages))
            store.truncate_epochs(run.id, epochs_done)
        else:  # new, or killed before its first checkpoint: (re)started from the beginning
            store.truncate_epochs(run.id, 0)
            (run.dir / CONFIG_FILE).write_text(dump(cfg))
        run.status = trainer.fit()
        run.metrics = trainer.finish() if run.status == "completed" else {
            "iterations": trainer.state.iteration,
            "train_time_s": trainer.state.train_time_s,
            "diverged_iteration": trainer.state.extra.get("diverged_iteration")}
        (run.dir / "losses.json").write_text(json.dumps(trainer.task.losses))
        run.artifacts |= {"checkpoint": CHECKPOINT, "weights": WEIGHTS, "config": CONFIG_FILE,
                          "detector": DETECTOR, "losses": "losses.json",
                          "predictions": "predictions"}
    return stored(run)
