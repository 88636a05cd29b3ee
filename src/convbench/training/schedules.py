"""Learning-rate schedules as pure functions of the iteration, looked up by name.

A schedule gives a multiplier-free LR for iteration ``it`` (0-based) of ``total`` iterations;
the engine sets it on every parameter group (times the group's ``lr_scale``, used by transfer
learning). Only reduce-on-plateau keeps state, updated once per epoch.

>>> from convbench.config import ScheduleConfig
>>> s = make_schedule(ScheduleConfig(name="step", milestones=[0.5]), base_lr=0.1,
...                   iters_per_epoch=10, total_iters=100)
>>> s.lr_at(0), round(s.lr_at(60), 4)
(0.1, 0.01)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..config import ScheduleConfig
from ..errors import ConfigError
from ..registry import Registry

LrFn = Callable[[int], float]
SCHEDULES: Registry[Callable[..., LrFn]] = Registry("schedule")


@SCHEDULES.register("constant")
def constant(cfg: ScheduleConfig, base_lr: float, ipe: int, total: int) -> LrFn:
    return lambda it: base_lr


@SCHEDULES.register("step")
def step(cfg: ScheduleConfig, base_lr: float, ipe: int, total: int) -> LrFn:
    """Multiply by ``gamma`` at each milestone (fractions of training, e.g. 0.667 and 0.889)."""
    points = [m * total for m in cfg.milestones]
    return lambda it: base_lr * cfg.gamma ** sum(it >= p for p in points)


@SCHEDULES.register("warmup-step")
def warmup_step(cfg: ScheduleConfig, base_lr: float, ipe: int, total: int) -> LrFn:
    """Detectron2's schedule (detection's default): a linear warm-up over
    ``warmup_iters`` iterations from ``base_lr × warmup_factor``, then ×``gamma`` at each
    milestone (fractions of training, rounded to whole iterations).

    >>> c = ScheduleConfig(name="warmup-step", warmup_iters=10, milestones=[0.5], gamma=0.1)
    >>> lr = warmup_step(c, 0.02, 1, 100)
    >>> round(lr(0), 6), lr(20), round(lr(60), 6)
    (2e-05, 0.02, 0.002)
    """
    points = [round(m * total) for m in cfg.milestones]

    def lr(it: int) -> float:
        # The same operations in the same order as detection's former `lr_at`, so that
        # detection runs keep their learning rates to the last bit.
        factor = 1.0
        if it < cfg.warmup_iters:
            alpha = it / cfg.warmup_iters
            factor = cfg.warmup_factor * (1 - alpha) + alpha
        for point in points:
            if it >= point:
                factor *= cfg.gamma
        return base_lr * factor

    return lr


@SCHEDULES.register("cosine")
def cosine(cfg: ScheduleConfig, base_lr: float, ipe: int, total: int) -> LrFn:
    return lambda it: cfg.min_lr + (base_lr - cfg.min_lr) * (1 + math.cos(math.pi * it / total)) / 2


@SCHEDULES.register("one-cycle", "onecycle")
def one_cycle(cfg: ScheduleConfig, base_lr: float, ipe: int, total: int) -> LrFn:
    """Smith's one-cycle: from peak/25 up to the peak in 30 % of training, cosine down to
    peak/1e4. The peak is ``schedule.max_lr``, or ``optim.lr`` when unset."""
    peak = cfg.max_lr or base_lr
    rise = max(1, int(0.3 * total))

    def lr(it: int) -> float:
        if it < rise:
            return peak / 25 + (peak - peak / 25) * it / rise
        t = (it - rise) / max(1, total - rise)
        return peak / 1e4 + (peak - peak / 1e4) * (1 + math.cos(math.pi * t)) / 2

    return lr


def _cyclical(mode: str) -> Callable[..., LrFn]:
    def make(cfg: ScheduleConfig, base_lr: float, ipe: int, total: int) -> LrFn:
        if cfg.max_lr is None:
            raise ConfigError(
                f"schedule {mode} needs an upper bound: --set schedule.max_lr=X "
                "(optim.lr is the lower bound), or --set schedule.bounds=auto."
            )
        low, high = base_lr, cfg.max_lr
        half = cfg.cycle_iters or max(1, round((cfg.cycle_epochs or 2.0) * ipe))

        def lr(it: int) -> float:
            cycle = it // (2 * half)
            x = abs(it / half - 2 * cycle - 1)
            amp = (high - low) * max(0.0, 1 - x)
            if mode == "triangular2":
                amp /= 2**cycle
            elif mode == "exp_range":
                amp *= cfg.exp_gamma**it
            return low + amp

        return lr

    return make


for _mode in ("triangular", "triangular2", "exp_range"):
    SCHEDULES.register(_mode)(_cyclical(_mode))


@SCHEDULES.register("plateau")
def plateau(cfg: ScheduleConfig, base_lr: float, ipe: int, total: int) -> LrFn:
    """Reduce-on-plateau: constant here; :class:`Schedule` scales it after stalled epochs."""
    return lambda it: base_lr


class Schedule:
    """A named LR function plus warm-up and, for ``plateau``, per-epoch state."""

    def __init__(self, cfg: ScheduleConfig, base_lr: float, iters_per_epoch: int, total_iters: int):
        self.cfg = cfg
        self.fn = SCHEDULES.get(cfg.name)(cfg, base_lr, iters_per_epoch, max(1, total_iters))
        self.warmup = round(cfg.warmup_epochs * iters_per_epoch)
        self.factor = 1.0
        self.best: float | None = None
        self.stalled = 0

    def lr_at(self, it: int) -> float:
        lr = self.fn(it) * self.factor
        if it < self.warmup:
            lr *= (it + 1) / self.warmup
        return lr

    def on_epoch_end(self, val_loss: float | None) -> None:
        if self.cfg.name != "plateau" or val_loss is None:
            return
        if self.best is None or val_loss < self.best:
            self.best, self.stalled = val_loss, 0
            return
        self.stalled += 1
        if self.stalled > self.cfg.plateau_patience:
            self.factor *= self.cfg.plateau_factor
            self.stalled = 0

    def state_dict(self) -> dict:
        return {"factor": self.factor, "best": self.best, "stalled": self.stalled}

    def load_state_dict(self, state: dict) -> None:
        self.factor, self.best, self.stalled = state["factor"], state["best"], state["stalled"]


def make_schedule(
    cfg: ScheduleConfig, *, base_lr: float, iters_per_epoch: int, total_iters: int
) -> Schedule:
    return Schedule(cfg, base_lr, iters_per_epoch, total_iters)
