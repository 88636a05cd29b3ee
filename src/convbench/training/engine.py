"""The fit loop: one training run from a :class:`RunConfig` to a completed run in the store.

>>> import convbench
>>> run = convbench.train({"data": {"dataset": "digits"}, "model": {"name": "B2FL8"},
...                        "train": {"epochs": 1}}, quiet=True)   # doctest: +SKIP
>>> run.status, run.metrics["test_accuracy"] > 0.5                 # doctest: +SKIP
('completed', True)
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import config as cfgmod
from ..config import RunConfig
from ..data import load_data
from ..models import ignored_fields_note, resolve
from ..results import Run
from ..store import Store
from .classification import BEST, ClassificationTrainer, batches_per_epoch
from .device import select_device, set_threads
from .lifecycle import recorded_run, resume_target, stored
from .optim import OPTIMIZERS
from .schedules import SCHEDULES
from .task import FitState
from .trainer import CHECKPOINT, BatchHook, EpochHook

# The classification trainer under the name the rest of the package and its users know:
# the one loop (trainer.py) over a ClassificationTask (classification.py).
Trainer = ClassificationTrainer
LAST = CHECKPOINT

__all__ = ["BEST", "LAST", "BatchHook", "EpochHook", "FitState", "Run", "Trainer",
           "batches_per_epoch", "prepare_config", "train"]


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
        target = resume_target(store, resume, "train", "training")
        resume = target["id"]
        cfg = cfgmod.build(target["config"], source=f"run {resume}")
    else:
        cfg = prepare_config(config if config is not None else {})
    bundle = load_data(cfg.data, cfg.train.seed)
    lr_bounds = None
    if not resume and cfg.schedule.bounds == "auto":
        from .lr_finder import auto_bounds  # lr_finder builds on this module

        cfg, lr_bounds = auto_bounds(cfg, bundle, store, group_id=group_id, quiet=quiet)
    device = select_device(cfg.train.device)
    # The trainer meters energy and memory itself: it banks energy in its checkpoints.
    with recorded_run(store, "train", cfg.model_dump(mode="json"), seed=cfg.train.seed,
                      name=cfg.name, device=device, threads=set_threads(cfg.train.threads),
                      group_id=group_id, resume=resume, energy=False, memory=False) as run:
        if lr_bounds:
            store.update(run.id, metrics={"lr_bounds": lr_bounds})
        trainer = Trainer(cfg, store, run.id, bundle, quiet=quiet)
        if resume:
            trainer.restore()
            store.truncate_epochs(run.id, trainer.state.epoch)
            run.log(f"resumed after epoch {trainer.state.epoch}")
        else:
            (run.dir / "config.yaml").write_text(cfgmod.dump(cfg))
            run.log(*bundle.notes)
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
            }
        )
        run.artifacts |= {"checkpoint": LAST, "best_weights": BEST, "config": "config.yaml"}
    return stored(run)
