"""What the one training loop (:class:`~convbench.training.trainer.Trainer`) needs from a kind
of training: the *task* builds the model and its batches, computes the loss of one batch,
keeps its own running figures and says when an epoch or the run is over.

The loop does the rest the same way for every task: optimiser and LR schedule from the
``OPTIMIZERS`` / ``SCHEDULES`` registries, the optimisation step (gradient scaling, clipping),
progress display, checkpoints and resume, stop handling and the cost
measurement of the trained model. Classification
(:class:`~convbench.training.classification.ClassificationTask`) and detection
(:class:`~convbench.detection.task.DetectionTask`) implement it.

An *epoch* here is what the task makes of it: a full pass for classification; for detection
the iterations up to the next pass boundary (its budget may end inside a pass).

>>> state = FitState(iteration=3)
>>> state.epoch, state.iteration, state.extra
(0, 3, {})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..config import MeasureConfig, OptimConfig, ScheduleConfig
from ..store import Store


@dataclass
class FitState:
    """Everything of the loop that must survive a kill; saved in every checkpoint."""

    epoch: int = 0
    iteration: int = 0
    best_val: float | None = None
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    train_time_s: float = 0.0
    energy_j: float = 0.0
    energy_s: float = 0.0  # metered seconds of that energy (for the run's mean power)
    time_to_target_s: float | None = None
    # Training time of the epoch in progress (a run may be checkpointed inside an epoch).
    epoch_time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    """The result of one forward pass: the loss to optimise, its host value when the task
    reads it every step anyway (the loop then refuses a non-finite loss before stepping), and
    the outputs handed to a per-batch hook after ``(lr, loss)``."""

    loss: torch.Tensor
    value: float | None = None
    outputs: tuple = ()


class Task(Protocol):
    """One kind of training, as the generic loop drives it (see the module docstring)."""

    device: torch.device
    amp: torch.dtype | None        # mixed-precision dtype the task runs its forward in
    seed: int                      # seeded before the model is built
    optim_cfg: OptimConfig         # optimiser name (OPTIMIZERS) and settings, incl. grad_clip
    schedule_cfg: ScheduleConfig   # LR schedule name (SCHEDULES) and settings
    iters_per_epoch: float
    total_iters: int
    epochs: int                    # shown by the progress display ("epoch 3/12")
    checkpoint_every: int | None   # iterations between checkpoints inside an epoch (None: none)
    measure: MeasureConfig         # cost probes and the electricity price
    input_shape: tuple[int, int, int]  # one input (C, H, W) for FLOPs, latency, throughput

    def build_model(self) -> nn.Module:
        """The model, on ``device``."""

    def param_groups(self, model: nn.Module) -> list:
        """What the optimiser trains: parameters or param-group dicts (with ``lr_scale``)."""

    def next_epoch(self, state: FitState) -> int | None:
        """The number of the epoch to run next, or None when training is done."""

    def start_epoch(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: FitState) -> int:
        """Prepare an epoch (train mode, seeds, running sums); return its number of steps."""

    def batch(self, step: int, iteration: int) -> Any:
        """The batch of ``step`` of this epoch (``iteration`` counts from the run's start)."""

    def forward(self, model: nn.Module, batch: Any) -> Step:
        """Forward pass and loss of one batch."""

    def after_step(self, step: Step, lr: float, state: FitState) -> None:
        """Account a finished optimiser step (``state.iteration`` already counts it)."""

    def progress_stats(self) -> dict[str, float]:
        """Running figures for the progress display; ``loss`` must be among them (a
        non-finite one ends the run as diverged)."""

    def out_of_time(self, state: FitState) -> bool:
        """True to end the epoch early after this step (a time budget checked per step)."""

    def epoch_row(self, state: FitState, lr: float) -> dict[str, Any]:
        """The training figures of the epoch just run (``state.epoch_time_s`` is its time)."""

    def end_epoch(self, epoch: int, row: dict[str, Any], model: nn.Module,
                  state: FitState) -> dict[str, Any]:
        """The stored row of a finished epoch (validation, best-epoch tracking, …); a row
        with an ``epoch`` key is stored under that number."""

    def stop_reason(self, state: FitState) -> str | None:
        """Why training ends after this epoch (early stopping, a time budget), or None."""

    def state_dict(self) -> dict[str, Any]:
        """The task's own state for a checkpoint (plain values and tensors only)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back :meth:`state_dict` from a checkpoint."""

    def finish(self, model: nn.Module, state: FitState, run_dir: Path, store: Store,
               run_id: str) -> dict[str, Any]:
        """Quality metrics of the trained model (the loop adds energy, memory and cost)."""

    def cost_weights(self, run_dir: Path) -> Path | None:
        """A weights file to keep the measured safetensors at, or None for a temporary one."""
