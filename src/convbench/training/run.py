"""One classification training run, from a :class:`RunConfig` to a completed run in the
store (``convbench train``). It sits above the trainer and the LR range test, because
``schedule.bounds: auto`` runs a range test before training.

>>> import convbench
>>> run = convbench.train({"data": {"dataset": "digits"}, "model": {"name": "B2FL8"},
...                        "train": {"epochs": 1}}, quiet=True)   # doctest: +SKIP
>>> run.status, run.metrics["test_accuracy"] > 0.5                 # doctest: +SKIP
('completed', True)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from .. import config as cfgmod
from ..config import RunConfig
from ..data import load_data
from ..models import ignored_fields_note
from ..results import Run
from ..store import Store
from .autotune import autotune, describe
from .classification import with_batch_size
from .device import select_device, set_threads
from .engine import BEST, LAST, EpochHook, Trainer, prepare_config
from .lifecycle import recorded_run, resumed_config, stored
from .lr_finder import auto_bounds
from .trainer import StepHook


def train(
    config: RunConfig | dict | str | Path | None = None,
    *,
    store: Store | str | None = None,
    quiet: bool = True,
    resume: str | None = None,
    group_id: str | None = None,
    on_epoch: EpochHook | None = None,
    on_start: Callable[[str], None] | None = None,
    on_step: StepHook | None = None,
) -> Run:
    """Train one network and record everything in the store; return the stored run.

    ``resume`` continues a killed or stopped run from its last epoch checkpoint (or, killed
    before its first one, starts it over under the same id); it ends with the same numbers an
    uninterrupted run of the same seed gives. ``on_start(run_id)`` is called once the run is
    stored (the web app's worker names its run with it); ``on_step(iteration, sample)`` after
    every optimiser step (``sample()`` reads its loss, accuracy and LR: a host sync, so a hook
    asks only when it wants a point), ``on_epoch(epoch, row)`` after every epoch (True stops
    the run resumably).

    >>> run = train({"model": {"name": "simple-cnn"}, "train": {"epochs": 1}})  # doctest: +SKIP
    >>> run.status                                                               # doctest: +SKIP
    'completed'
    """
    store = store if isinstance(store, Store) else Store(store)
    if resume:
        resume, cfg = resumed_config(store, resume, "train", cfgmod.build, "training")
    else:
        cfg = prepare_config(config if config is not None else {})
    bundle = load_data(cfg.data, cfg.train.seed)
    cfg = with_batch_size(cfg, bundle)
    lr_bounds = None
    if not resume and cfg.schedule.bounds == "auto":
        cfg, lr_bounds = auto_bounds(cfg, bundle, store, group_id=group_id, quiet=quiet)
    tuning = None
    if not resume:  # a resumed run keeps the choice its stored config records
        cfg, tuning = autotune(cfg, bundle)
    device = select_device(cfg.train.device)
    m = cfg.measure
    with recorded_run(store, "train", cfg.model_dump(mode="json"), seed=cfg.train.seed,
                      name=cfg.name, device=device, threads=set_threads(cfg.train.threads),
                      group_id=group_id, resume=resume, price_per_kwh=m.price_per_kwh,
                      grid_gco2_per_kwh=m.grid_gco2_per_kwh) as run:
        if lr_bounds:
            store.update(run.id, metrics={"lr_bounds": lr_bounds})
        if tuning:
            store.update(run.id, metrics={"autotune": tuning})
            run.log(describe(tuning))
            if not quiet:
                print(describe(tuning), file=sys.stderr, flush=True)
        if on_start is not None:
            on_start(run.id)
        trainer = Trainer(cfg, store, run.id, bundle, quiet=quiet)
        trainer.on_step = on_step
        trainer.energy_so_far = run.energy_so_far
        if resume and trainer.restore():
            run.energy_before_j = trainer.state.energy_j
            run.energy_before_s = trainer.state.energy_s
            store.truncate_epochs(run.id, trainer.state.epoch)
            run.log(f"resumed after epoch {trainer.state.epoch}")
        else:
            if resume:  # killed before its first checkpoint: the same run, started over
                run.log("resumed before the first checkpoint: starting over (same id, config "
                        "and seed)")
                store.truncate_epochs(run.id, 0)  # a row stored just before the kill
            (run.dir / "config.yaml").write_text(cfgmod.dump(cfg))
            run.log(*bundle.notes)
            if note := trainer.prep.constant_note():
                run.log(note)
            if note := ignored_fields_note(cfg.model):
                run.log(note)
                if not quiet:
                    print(note, file=sys.stderr, flush=True)
        run.status = trainer.fit(on_epoch)
        run.metrics = (
            trainer.finish()
            if run.status == "completed"
            else {
                "epochs_run": trainer.state.epoch,
                "train_time_s": trainer.state.train_time_s,
                "diverged_epoch": trainer.state.extra.get("diverged_epoch"),
                "diverged_loss": trainer.state.extra.get("diverged_loss"),
                "first_loss": trainer.state.extra.get("first_loss"),
            }
        )
        run.artifacts |= {"checkpoint": LAST, "best_weights": BEST, "config": "config.yaml"}
    return stored(run)
