"""The classification trainer under the names the package and its users know (``Trainer``,
``LAST``, ``BEST``), and :func:`prepare_config`, which every classification run starts from.

>>> cfg = prepare_config({"model": {"name": "B2FL8"}})
>>> cfg.model.name, cfg.model.blocks, cfg.model.base_filters
('blocks', 2, 8)
"""

from __future__ import annotations

from pathlib import Path

from .. import config as cfgmod
from ..config import RunConfig
from ..models import resolve
from .classification import BEST, ClassificationTrainer, batches_per_epoch
from .optim import OPTIMIZERS
from .schedules import SCHEDULES
from .task import FitState
from .trainer import CHECKPOINT, BatchHook, EpochHook

# The classification trainer under the name the rest of the package and its users know:
# the one loop (trainer.py) over a ClassificationTask (classification.py).
Trainer = ClassificationTrainer
LAST = CHECKPOINT

__all__ = ["BEST", "LAST", "BatchHook", "EpochHook", "FitState", "Trainer",
           "batches_per_epoch", "prepare_config"]


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
