"""Training: the fit loop, schedules, optimisers, batch augmentation and checkpoints."""

from .engine import Run, Trainer, prepare_config, train

__all__ = ["Run", "Trainer", "prepare_config", "train"]
