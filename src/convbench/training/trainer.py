"""The one training loop: any :class:`~convbench.training.task.Task` (classification,
detection) trained the same way, with the same optimisers, schedules, progress display,
checkpoints (with the energy used so far), stop handling and cost measurement; the run's
lifecycle (:mod:`~convbench.training.lifecycle`) meters energy and peak memory.

The loop is iteration-exact: the LR of iteration *i* comes from the schedule, the task knows
the batch of iteration *i*, and everything else is in the checkpoint, so a resumed run sees
the same batches and learning rates as an uninterrupted one. Ctrl-C and SIGTERM
(:class:`~convbench.training.lifecycle.Stopped`) pass through :meth:`Trainer.fit`, with the
last checkpoint left in place.

>>> trainer = Trainer(task, store, run_id)        # doctest: +SKIP
>>> status = trainer.fit()                         # doctest: +SKIP
>>> metrics = trainer.finish() if status == "completed" else {}   # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from ..atomic import remove_leftovers
from ..measure import measure_model
from ..runlog import LOG, append_log
from ..store import Store
from .checkpoint import CheckpointRefused, load_checkpoint, save_checkpoint
from .optim import make_optimizer
from .progress import Progress
from .schedules import make_schedule
from .task import FitState, Task

CHECKPOINT = "last.pt"

# An epoch whose mean training loss is more than this many times the loss of the run's first
# batch (the untrained network's, at least 1) has diverged even if the loss is still finite:
# cross-entropy starts near ln(classes), and no run that learns anything averages 100× that
# over an epoch, while a run the LR blew up does (Adam at LR 1e6: 1e21).
DIVERGED_FACTOR = 100.0


def diverged(loss: float, first: float | None) -> bool:
    """Whether an epoch's mean training loss means the run diverged: NaN/inf, or more than
    ``DIVERGED_FACTOR`` × ``max(1, first)``, ``first`` being the loss of the run's first batch.

    >>> diverged(0.4, first=2.3), diverged(float("nan"), first=2.3), diverged(1e21, first=2.3)
    (False, True, True)
    """
    if not math.isfinite(loss):
        return True
    return first is not None and loss > DIVERGED_FACTOR * max(1.0, first)

# Called after every optimiser step with (lr, loss, *task outputs); True ends the epoch early.
BatchHook = Callable[..., bool]
# Called after every finished epoch with (epoch, row); True stops the run (status "stopped").
EpochHook = Callable[[int, dict], bool]
# What a step hook may ask for: the task's running figures of the epoch so far (``loss``, and
# ``acc`` for classification), the step's ``lr``, its ``epoch`` and ``step`` within it.
# Asking costs a host sync (a GPU waits for it), so the loop hands a hook this lazily and a
# hook asks only when it wants a point (the web app's worker: every ~0.2 s).
StepSample = Callable[[], dict[str, float]]
# Called after every optimiser step, and after the checkpoint of that step, with
# (iteration, sample); raising KeyboardInterrupt there stops the run resumably.
StepHook = Callable[[int, StepSample], None]


class Trainer:
    """Model, optimiser, schedule and state of one run of ``task``; :meth:`fit` trains.

    ``on_step(iteration, sample)`` is called after every optimiser step (and after any
    checkpoint of that step); ``sample()`` gives that step's figures (see :data:`StepSample`).
    """

    def __init__(self, task: Task, store: Store, run_id: str, quiet: bool = False,
                 on_step: StepHook | None = None):
        self.task, self.store, self.run_id, self.quiet = task, store, run_id, quiet
        self.on_step = on_step
        self.run_dir = store.run_dir(run_id)
        self.device = task.device
        self.iters_per_epoch = task.iters_per_epoch
        torch.manual_seed(task.seed)
        self.model = task.build_model()
        self.optimizer = make_optimizer(task.optim_cfg, task.param_groups(self.model))
        self.schedule = make_schedule(task.schedule_cfg, base_lr=task.optim_cfg.lr,
                                      iters_per_epoch=task.iters_per_epoch,
                                      total_iters=task.total_iters)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=task.amp == torch.float16)
        self.state = FitState()
        # Joules the run has used so far (its lifecycle's meter, set by the caller): banked in
        # every checkpoint, so a resumed run counts the energy of its earlier segments too.
        # (joules, seconds) so far (:meth:`RecordedRun.energy_so_far`).
        self.energy_so_far: Callable[[], tuple[float, float]] | None = None
        self._pending: tuple[int, int, float] | None = None

    # ----- checkpoints -------------------------------------------------------------------
    def save(self) -> None:
        """Checkpoint everything a resumed run needs (energy so far banked first)."""
        if self.energy_so_far is not None:
            self.state.energy_j, self.state.energy_s = self.energy_so_far()
        save_checkpoint(self.run_dir / CHECKPOINT, {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "state": self.state.__dict__,
            "task": self.task.state_dict(),
        })
        # Artifacts at a URL: the checkpoint is where another machine can resume from.
        self.store.artifacts.push(self.run_id)

    def restore(self) -> bool:
        """Continue from the run's last checkpoint; False, changing nothing, when there is
        none (the run was killed before its first checkpoint: nothing was lost, and training
        from this fresh state is exactly the run started over)."""
        path = self.run_dir / CHECKPOINT
        # A kill between a checkpoint's write and its rename left the torn new one beside the
        # last whole one; this process owns the run now.
        remove_leftovers(path)
        if not path.is_file():
            return False
        ckpt = load_checkpoint(path)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.schedule.load_state_dict(ckpt["schedule"])
            self.scaler.load_state_dict(ckpt["scaler"])
            state = FitState(**ckpt["state"])
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise CheckpointRefused(f"Checkpoint of run {self.run_id} does not fit its config "
                                    f"({type(err).__name__}). Start a new run instead.") from None
        if "torch_rng" in ckpt:
            torch.set_rng_state(ckpt["torch_rng"])
        self.state = state
        self.task.load_state_dict(ckpt.get("task") or {})
        return True

    # ----- one epoch ---------------------------------------------------------------------
    def train_epoch(self, epoch: int, progress: Progress,
                    on_batch: BatchHook | None = None) -> dict[str, Any]:
        """Run one epoch of the task; return its training row.

        A non-finite loss ends the epoch at once with the row ``{"train_loss": loss}``.
        """
        task, s, opt = self.task, self.state, self.optimizer
        steps = task.start_epoch(epoch, self.model, opt, s)
        progress.start_epoch(epoch, steps)
        self._pending = None
        lr = self.schedule.lr_at(s.iteration)
        mark = time.perf_counter()
        for b in range(steps):
            batch = task.batch(b, s.iteration)
            lr = self.schedule.lr_at(s.iteration)
            for group in opt.param_groups:
                group["lr"] = lr * group["lr_scale"]
            step = task.forward(self.model, batch)
            if s.iteration == 0:  # the untrained network's loss: the divergence reference
                s.extra["first_loss"] = (step.value if step.value is not None
                                         else float(step.loss.detach()))
            if step.value is not None and not math.isfinite(step.value):
                s.extra["diverged_iteration"] = s.iteration + 1
                return {"train_loss": step.value}
            self._optimise(step.loss)
            s.iteration += 1
            task.after_step(step, lr, s)
            now = time.perf_counter()
            s.train_time_s += now - mark
            s.epoch_time_s += now - mark
            mark = now
            if on_batch is not None and on_batch(lr, step.loss.detach(), *step.outputs):
                break  # e.g. the LR range test: divergence or its iteration budget
            last = b == steps - 1
            if progress.due() or last:
                # With the task's own per-step reads, the only host sync of the loop.
                stats = task.progress_stats()
                if not math.isfinite(stats["loss"]):
                    return {"train_loss": stats["loss"]}
                progress.update(b + 1, lr=lr, **stats)
            if task.out_of_time(s):
                break
            if last:
                self._pending = (epoch, b + 1, lr)  # told after the epoch's checkpoint, in fit()
                continue
            every = task.checkpoint_every
            if every and s.iteration % every == 0:
                self.save()
                mark = time.perf_counter()  # checkpoints are not training time
            self._notify(epoch, b + 1, lr)
        row = task.epoch_row(s, lr)
        s.epoch_time_s = 0.0
        return row

    def _optimise(self, loss: torch.Tensor) -> None:
        opt, clip = self.optimizer, self.task.optim_cfg.grad_clip
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if clip:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.scaler.step(opt)
        self.scaler.update()

    def _notify(self, epoch: int, step: int, lr: float) -> None:
        if self.on_step is not None:
            # No read here: the hook decides whether this step's figures are worth a sync.
            self.on_step(self.state.iteration,
                         lambda: {**self.task.progress_stats(), "lr": lr, "epoch": epoch,
                                  "step": step})

    # ----- the run -----------------------------------------------------------------------
    def fit(self, on_epoch: EpochHook | None = None) -> str:
        """Train the remaining epochs; return the final status: ``completed``, ``diverged``
        (see :func:`diverged`) or ``stopped`` (``on_epoch`` returned True)."""
        task, s = self.task, self.state
        with Progress(task.epochs, quiet=self.quiet) as progress:
            while (epoch := task.next_epoch(s)) is not None:
                row = self.train_epoch(epoch, progress)
                loss, first = row["train_loss"], s.extra.get("first_loss")
                if diverged(loss, first):
                    why = ("" if not math.isfinite(loss) else
                           f", over {DIVERGED_FACTOR:g}× the first batch's {first:.4g}")
                    self.log(f"epoch {epoch}: training loss became {loss:.4g}{why}; diverged")
                    s.extra["diverged_epoch"], s.extra["diverged_loss"] = epoch, loss
                    return "diverged"
                row = task.end_epoch(epoch, row, self.model, s)
                s.epoch = epoch = row.get("epoch", epoch)
                self.schedule.on_epoch_end(row.get("val_loss"))
                self.store.add_epoch(self.run_id, epoch, row)
                progress.end_epoch(epoch, row)
                self.log(epoch_line(epoch, row))
                self.save()
                if self._pending is not None:
                    self._notify(*self._pending)
                if on_epoch is not None and on_epoch(epoch, row):
                    self.log(f"stopped after epoch {epoch} by the caller (search pruner)")
                    return "stopped"
                if (reason := task.stop_reason(s)) is not None:
                    self.log(reason)
                    break
        return "completed"

    def finish(self) -> dict[str, Any]:
        """The task's quality metrics, then the model's costs: parameters, FLOPs/MACs, disk
        size and (``measure.cost``) latency and throughput. Energy and peak memory are the
        run lifecycle's (:func:`~convbench.training.lifecycle.recorded_run`)."""
        task, s = self.task, self.state
        metrics = task.finish(self.model, s, self.run_dir, self.store, self.run_id)
        m = task.measure
        # Last: the probes feed the model random inputs (they draw on the global RNG).
        metrics |= measure_model(self.model, task.input_shape, self.device, m,
                                 weights_path=task.cost_weights(self.run_dir), timed=m.cost)
        return metrics

    def log(self, line: str) -> None:
        """Append a time-stamped line to the run's ``train.log``."""
        append_log(self.run_dir / LOG, [line])


def epoch_line(epoch: int, row: dict) -> str:
    """One epoch row as a log line.

    >>> epoch_line(2, {"train_loss": 0.51234, "lr": 0.001})
    'epoch=2 train_loss=0.5123 lr=0.001'
    """
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in {"epoch": epoch, **row}.items()
    )
