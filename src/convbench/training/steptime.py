"""Seconds per optimiser step of a classification config on this machine, timed through the
trainer's own epoch loop (so data preparation, augmentation and the optimiser are counted as
a real run pays them), in a throw-away store.

Used by the playground's epoch-time estimate (``server/probe.py``) and by ``train.amp``,
``train.channels_last`` and ``train.compile`` = ``auto`` (``training/autotune.py``).
"""

from __future__ import annotations

import tempfile
import time

import torch

from ..config import RunConfig
from ..data.bundle import DataBundle
from ..store import Store
from .classification import ClassificationTrainer
from .device import select_device
from .progress import Progress


def time_steps(cfg: RunConfig, bundle: DataBundle, *, warmup: int, steps: int,
               max_epochs: int = 3) -> tuple[list[float], float]:
    """``(gaps, first_s)``: the seconds between consecutive steps after ``warmup`` untimed
    ones (at most ``steps`` of them; fewer when ``max_epochs`` of a tiny data set end first),
    and the seconds from the start of the loop to the end of its first step (what a
    ``torch.compile`` pays once).

    Builds a fresh trainer, so the model starts from its own initialisation; the global RNG
    is restored afterwards, so a run timed before it trains gives the same numbers as one
    that was not.
    """
    stamps: list[float] = []
    # On a GPU the loop only queues kernels: wait for them, or the gaps time the queueing.
    sync = torch.cuda.synchronize if select_device(cfg.train.device).type == "cuda" else None

    def on_batch(*_: object) -> bool:
        if sync is not None:
            sync()
        stamps.append(time.perf_counter())
        return len(stamps) > warmup + steps

    with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as folder, \
            Store(folder + "/timing.db") as store:
        run_id = store.create_run(name="timing", config=cfg.model_dump(mode="json"),
                                  seed=cfg.train.seed, env={})
        trainer = ClassificationTrainer(cfg, store, run_id, bundle, quiet=True)
        start = time.perf_counter()
        for epoch in range(1, max_epochs + 1):
            trainer.train_epoch(epoch, Progress(1, quiet=True), on_batch)
            if len(stamps) > warmup + steps:
                break
    first_s = stamps[0] - start if stamps else 0.0
    timed = stamps[warmup:]
    return [b - a for a, b in zip(timed, timed[1:], strict=False)], first_s
