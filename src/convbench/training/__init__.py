"""Training: the fit loop, schedules, optimisers, batch augmentation and checkpoints."""

from ..results import Run
from .engine import Trainer, prepare_config
from .run import train

__all__ = ["Run", "Trainer", "prepare_config", "train"]
