"""LR range test (Smith 2017): train while the LR rises from ``min_lr`` to ``max_lr`` every
batch, record loss and accuracy against the LR, and read LR bounds off the curves.

The test runs on the engine's own :class:`~convbench.training.engine.Trainer` (data
preparation, model, optimiser, batch loop) through its per-batch hook, and leaves the trainer
exactly as it found it: weights, BatchNorm statistics, gradients, optimiser and scaler state,
schedule, counters and the RNG states are restored afterwards.

>>> [round(x, 6) for x in sweep_lrs(1e-4, 1.0, 5, "exp")]
[0.0001, 0.001, 0.01, 0.1, 1.0]
>>> sweep_lrs(0.0, 1.0, 3, "linear")
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import copy
import json
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .. import config as cfgmod
from ..config import RunConfig
from ..data import DataBundle, load_data
from ..errors import ConfigError
from ..results import Group, Run, load_group
from ..store import Store
from .classification import with_batch_size
from .device import select_device, set_threads
from .engine import FitState, Trainer, batches_per_epoch, prepare_config
from .lifecycle import RecordedRun, Stopped, recorded_run, stored
from .progress import Progress

# The divergence test waits this many iterations (or 2 % of the sweep) for the EMA to settle.
_DIVERGE_WARMUP = 5
# Points kept per curve in the run's metrics (the full curve is an artifact file).
CURVE_POINTS = 200


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BoundsRule(_Spec):
    """How LR bounds are read off a range-test curve (see docs/lr-find.md).

    On the smoothed ``metric`` (train-batch accuracy or loss) against the LR: the *gain* at
    each point is the improvement over the start (absolute for accuracy, relative for loss),
    ``G`` the largest gain. The lower bound is where the climb to that peak starts: just after
    the last point before the peak whose gain is below ``start``·G; the upper bound the first
    LR after it whose gain reaches ``slow``·G (improvement slows down after it), capped at the
    LR of the smoothed loss minimum (where the loss turns up) when ``loss_cap``. With
    ``lower: ratio`` (or when the two coincide) the lower bound is upper/``ratio`` (Smith's
    alternative). Below ``min_gain`` there are no
    bounds: the metric never improved.
    """

    metric: Literal["accuracy", "loss"] = "accuracy"
    lower: Literal["start", "ratio"] = "start"
    start: float = Field(0.1, gt=0, lt=1)
    slow: float = Field(0.9, gt=0, le=1)
    ratio: float = Field(4.0, gt=1)
    min_gain: float = Field(0.02, ge=0)
    loss_cap: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> BoundsRule:
        if self.start >= self.slow:
            raise ValueError("start must be below slow (fractions of the total gain)")
        return self


class LRFindSpec(_Spec):
    """One LR range test: the sweep, its length, smoothing, divergence stop and bound rule.

    The length is ``iters`` iterations when set, else ``epochs`` epochs.

    >>> LRFindSpec(min_lr=1e-4, max_lr=1e-2).sweep, LRFindSpec(min_lr=1e-4, max_lr=1).sweep
    ('linear', 'exp')
    """

    min_lr: float = Field(1e-4, gt=0)
    max_lr: float = Field(1e-2, gt=0)
    mode: Literal["auto", "linear", "exp"] = "auto"
    epochs: int = Field(8, ge=1)
    iters: int | None = Field(None, ge=2)
    beta: float = Field(0.98, ge=0, lt=1, description="EMA smoothing of batch loss/accuracy")
    diverge: float | None = Field(4.0, gt=1, description="stop when smoothed loss > diverge × min")
    rule: BoundsRule = BoundsRule()

    @model_validator(mode="after")
    def _range(self) -> LRFindSpec:
        if self.max_lr <= self.min_lr:
            raise ValueError(f"max_lr ({self.max_lr}) must be above min_lr ({self.min_lr})")
        return self

    @property
    def sweep(self) -> str:
        """``auto``: linear over at most two decades (the study's ranges), else exponential."""
        if self.mode != "auto":
            return self.mode
        return "linear" if self.max_lr / self.min_lr <= 100 * (1 + 1e-9) else "exp"


def make_spec(**fields: Any) -> LRFindSpec:
    """An :class:`LRFindSpec` from keyword fields, with a one-line ConfigError when invalid.

    >>> make_spec(min_lr=1e-3, max_lr=1e-1, mode="exp").mode
    'exp'
    """
    try:
        return LRFindSpec(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as err:
        raise cfgmod.config_error(err, "lr-find", what="field",
                                  help="docs/lr-find.md lists the rule's fields.") from None


def sweep_lrs(min_lr: float, max_lr: float, n: int, mode: str) -> list[float]:
    """The LR of each of ``n`` iterations: linear (as in the study) or exponential."""
    if n == 1:
        return [min_lr]
    if mode == "exp":
        return [min_lr * (max_lr / min_lr) ** (i / (n - 1)) for i in range(n)]
    return [min_lr + (max_lr - min_lr) * i / (n - 1) for i in range(n)]


@dataclass
class LRCurve:
    """What a range test recorded: per batch and per epoch."""

    lr: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    loss_smooth: list[float] = field(default_factory=list)
    accuracy_smooth: list[float] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    stop_reason: str = "budget"
    iters_per_epoch: int = 1
    time_s: float = 0.0
    # Set when a stop rule decided the test before its end: rule, why, iteration, of how many.
    early_stop: dict[str, Any] | None = None

    @property
    def iterations(self) -> int:
        return len(self.lr)


# A stop rule decides a range test before its end (the search's early verdicts). It is called
# after every batch (``epoch_end`` False) and after each epoch's validation (True) with the
# curve so far, the sweep's length in iterations and the data's chance levels
# (:func:`chance_levels`), and returns ``(rule, why)`` to stop, or None to go on.
StopRule = Callable[[LRCurve, int, dict[str, float], bool], "tuple[str, str] | None"]


class _Recorder:
    """The per-batch hook: records, smooths (bias-corrected EMA) and decides when to stop."""

    def __init__(self, curve: LRCurve, total: int, beta: float, diverge: float | None,
                 stop_rule: StopRule | None = None, chance: dict[str, float] | None = None):
        self.curve, self.total, self.beta, self.diverge = curve, total, beta, diverge
        self.stop_rule, self.chance = stop_rule, chance or {}
        self._loss = self._acc = 0.0
        self._best = math.inf
        self.stopped = False

    def ask(self, epoch_end: bool) -> bool:
        """Let the stop rule decide; record its verdict (rule, why, when) on the curve."""
        if self.stopped or self.stop_rule is None:
            return self.stopped
        verdict = self.stop_rule(self.curve, self.total, self.chance, epoch_end)
        if verdict is not None:
            n = self.curve.iterations
            self.curve.stop_reason, self.stopped = "early", True
            self.curve.early_stop = {"rule": verdict[0], "why": verdict[1], "iteration": n,
                                     "iterations": self.total,
                                     "fraction": round(n / self.total, 4)}
        return self.stopped

    def __call__(self, lr: float, loss: torch.Tensor, logits: torch.Tensor,
                 y: torch.Tensor) -> bool:
        c, b = self.curve, self.beta
        value = float(loss)
        acc = (logits.argmax(1) == y).float().mean().item()
        c.lr.append(lr)
        c.loss.append(value)
        c.accuracy.append(acc)
        n = len(c.lr)
        if not math.isfinite(value):
            c.loss_smooth.append(math.nan)
            c.accuracy_smooth.append(c.accuracy_smooth[-1] if c.accuracy_smooth else acc)
            c.stop_reason, self.stopped = "diverged", True
            return True
        self._loss = b * self._loss + (1 - b) * value
        self._acc = b * self._acc + (1 - b) * acc
        smooth = self._loss / (1 - b**n)
        c.loss_smooth.append(smooth)
        c.accuracy_smooth.append(self._acc / (1 - b**n))
        self._best = min(self._best, smooth)
        warm = max(_DIVERGE_WARMUP, self.total // 50)
        if self.diverge and n > warm and smooth > self.diverge * self._best:
            c.stop_reason, self.stopped = "diverged", True
        elif n >= self.total:
            self.stopped = True
        return self.ask(epoch_end=False)


class _FixedLrs:
    """A schedule stand-in that hands the engine the sweep's LR for each iteration."""

    def __init__(self, lrs: list[float]):
        self.lrs = lrs

    def lr_at(self, it: int) -> float:
        return self.lrs[min(it, len(self.lrs) - 1)]


@dataclass
class TrainerSnapshot:
    """Everything a range test changes on a trainer, to put back afterwards."""

    model: dict[str, torch.Tensor]
    modes: dict[str, bool]
    grads: list[torch.Tensor | None]
    trainable: list[bool]
    optimizer: dict
    scaler: dict
    schedule: Any
    state: FitState
    rng: dict[str, Any]

    @classmethod
    def take(cls, trainer: Trainer) -> TrainerSnapshot:
        m = trainer.model
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                               "numpy": np.random.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return cls(
            model={k: v.detach().clone() for k, v in m.state_dict().items()},
            modes={name: mod.training for name, mod in m.named_modules()},
            grads=[None if p.grad is None else p.grad.detach().clone() for p in m.parameters()],
            # Gradual unfreezing (models/transfer.py) flips requires_grad at epoch starts.
            trainable=[p.requires_grad for p in m.parameters()],
            optimizer=copy.deepcopy(trainer.optimizer.state_dict()),
            scaler=copy.deepcopy(trainer.scaler.state_dict()),
            schedule=trainer.schedule, state=copy.deepcopy(trainer.state), rng=rng)

    def restore(self, trainer: Trainer) -> None:
        m = trainer.model
        with torch.no_grad():  # copies into the same tensors: the optimiser keeps its references
            m.load_state_dict(self.model)
        for name, mod in m.named_modules():
            mod.training = self.modes[name]
        for p, g, on in zip(m.parameters(), self.grads, self.trainable, strict=True):
            p.requires_grad_(on)
            p.grad = g
        trainer.optimizer.load_state_dict(self.optimizer)
        if self.scaler:
            trainer.scaler.load_state_dict(self.scaler)
        trainer.schedule, trainer.state = self.schedule, self.state
        torch.set_rng_state(self.rng["torch"])
        random.setstate(self.rng["python"])
        np.random.set_state(self.rng["numpy"])
        if "cuda" in self.rng:
            torch.cuda.set_rng_state_all(self.rng["cuda"])


def range_test(trainer: Trainer, spec: LRFindSpec, progress: Progress | None = None, *,
               stop_rule: StopRule | None = None,
               chance: dict[str, float] | None = None) -> LRCurve:
    """Run the LR sweep on ``trainer`` and return the curves; the trainer is left untouched.

    Validation runs after every epoch (and after a partial last one). ``stop_rule`` may end
    the test early (see :data:`StopRule`); its verdict is ``curve.early_stop``.

    >>> curve = range_test(trainer, LRFindSpec(min_lr=1e-4, max_lr=1, epochs=2))  # doctest: +SKIP
    >>> curve.stop_reason                                                          # doctest: +SKIP
    'budget'
    """
    snapshot = TrainerSnapshot.take(trainer)
    try:
        return _sweep(trainer, spec, progress or Progress(spec.epochs, quiet=True),
                      _Recorder(LRCurve(iters_per_epoch=trainer.iters_per_epoch),
                                spec.iters or spec.epochs * trainer.iters_per_epoch, spec.beta,
                                spec.diverge, stop_rule, chance))
    finally:
        snapshot.restore(trainer)


def _sweep(trainer: Trainer, spec: LRFindSpec, progress: Progress, hook: _Recorder) -> LRCurve:
    curve, total = hook.curve, hook.total
    trainer.schedule = _FixedLrs(sweep_lrs(spec.min_lr, spec.max_lr, total, spec.sweep))
    trainer.state = FitState()
    start = time.perf_counter()
    epoch = 0
    with progress:
        while not hook.stopped:
            epoch += 1
            before = curve.iterations
            row = trainer.train_epoch(epoch, progress, on_batch=hook)
            row |= trainer.validate()
            row |= {"iterations": curve.iterations - before, "lr": curve.lr[-1]}
            curve.epochs.append({"epoch": epoch, **row})
            if curve.iterations < total:  # rules that need the validation accuracy
                hook.ask(epoch_end=True)
            progress.end_epoch(epoch, {**row, "train_accuracy": row.get("train_accuracy", 0.0),
                                       "time_s": row.get("time_s", 0.0),
                                       "images_per_s": row.get("images_per_s", 0.0)})
    curve.time_s = time.perf_counter() - start
    return curve


# ----- reading the curve --------------------------------------------------------------------

def _finite_prefix(curve: LRCurve) -> int:
    n = 0
    for v in curve.loss_smooth:
        if not math.isfinite(v):
            break
        n += 1
    return n


def suggest_bounds(curve: LRCurve, rule: BoundsRule) -> dict[str, Any]:
    """Lower and upper LR bounds by ``rule`` (None, with a ``reason``, when there are none).

    >>> c = LRCurve(lr=[0.1 * i for i in range(1, 11)], loss=[1.0] * 10,
    ...             accuracy=[0.0] * 10, loss_smooth=[2.0 - 0.1 * i for i in range(10)],
    ...             accuracy_smooth=[0.1, 0.1, 0.2, 0.4, 0.6, 0.7, 0.75, 0.78, 0.8, 0.8])
    >>> b = suggest_bounds(c, BoundsRule())
    >>> round(b["lower"], 2), round(b["upper"], 2)
    (0.3, 0.7)
    """
    n = _finite_prefix(curve)
    out: dict[str, Any] = {"lower": None, "upper": None, "reason": None, "gain": None}
    if n < 3:
        out["reason"] = f"too few iterations before divergence ({n})"
        return out
    lrs = curve.lr[:n]
    loss = curve.loss_smooth[:n]
    metric = curve.accuracy_smooth[:n] if rule.metric == "accuracy" else loss
    # The first batches are noisy (one batch's accuracy): the start level is a median.
    base = statistics.median(metric[: max(1, n // 20)])
    if rule.metric == "accuracy":
        gain = [m - base for m in metric]
    else:  # relative loss decrease, so min_gain means the same at any loss scale
        gain = [(base - m) / (abs(base) or 1.0) for m in metric]
    peak = max(range(n), key=gain.__getitem__)
    total = gain[peak]
    out["gain"] = total
    if total < rule.min_gain:
        out["reason"] = (f"no improvement: smoothed {rule.metric} gained {total:.3g} "
                         f"(< min_gain {rule.min_gain})")
        return out
    # The climb to the peak starts after the last point still below start·G.
    below = [i for i in range(peak) if gain[i] < rule.start * total]
    lower_i = below[-1] + 1 if below else 0
    upper_i = next(i for i in range(lower_i, peak + 1) if gain[i] >= rule.slow * total)
    if rule.loss_cap:
        upper_i = min(upper_i, min(range(n), key=loss.__getitem__))
    lower, upper = lrs[lower_i], lrs[upper_i]
    if rule.lower == "ratio" or lower >= upper:
        lower = upper / rule.ratio
        out["reason"] = f"lower = upper / {rule.ratio:g}"
    out["lower"], out["upper"] = lower, upper
    return out


def _valley(loss: list[float]) -> int:
    """fastai's valley: 2/3 of the way down the longest strictly decreasing run of the loss."""
    n = len(loss)
    lds = [1] * n
    best_start = best_end = 0
    for i in range(1, n):
        for j in range(i):
            if loss[i] < loss[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[best_end] < lds[i]:
            best_end, best_start = i, i - lds[i]
    sections = (best_end - best_start) / 3
    return best_start + int(sections) + int(sections / 2)


def suggest_values(curve: LRCurve) -> dict[str, float | None]:
    """Single-LR suggestions of other tools, on the smoothed loss: ``steepest`` (most
    negative slope against log LR, before the minimum), ``valley`` (fastai), ``min_div10``
    (the LR of the minimum / 10)."""
    n = _finite_prefix(curve)
    if n < 3:
        return {"steepest": None, "valley": None, "min_div10": None}
    step = max(1, n // CURVE_POINTS)  # the valley search is quadratic: thin long curves
    idx = list(range(0, n, step))
    lrs = np.array([curve.lr[i] for i in idx])
    loss = np.array([curve.loss_smooth[i] for i in idx])
    low = int(np.argmin(loss))
    x = np.log10(lrs)
    steep = None
    if low >= 2 and np.ptp(x[: low + 1]) > 0:
        keep = np.concatenate(([True], np.diff(x[: low + 1]) > 0))
        xs, ys = x[: low + 1][keep], loss[: low + 1][keep]
        if len(xs) >= 2:
            steep = float(10 ** xs[int(np.argmin(np.gradient(ys, xs)))])
    return {"steepest": steep, "valley": float(lrs[_valley(loss.tolist())]),
            "min_div10": float(lrs[low] / 10)}


def thin(curve: LRCurve, points: int = CURVE_POINTS) -> dict[str, list[float]]:
    """The smoothed curve at about ``points`` evenly spaced iterations (for stored metrics)."""
    step = max(1, math.ceil(curve.iterations / points))
    idx = list(range(0, curve.iterations, step))
    if idx and idx[-1] != curve.iterations - 1:
        idx.append(curve.iterations - 1)
    return {"lr": [curve.lr[i] for i in idx],
            "loss": [curve.loss_smooth[i] for i in idx],
            "accuracy": [curve.accuracy_smooth[i] for i in idx]}


# ----- as a stored run ------------------------------------------------------------------------

def chance_levels(bundle: DataBundle) -> dict[str, float]:
    """Accuracy of guessing: uniform (1/classes) and the majority class of the validation split."""
    y = bundle.val.y if len(bundle.val) else bundle.train.y
    counts = torch.bincount(y, minlength=bundle.num_classes)
    return {"chance_uniform": 1.0 / bundle.num_classes,
            "chance_majority": float(counts.max()) / max(1, len(y))}


def _test_config(cfg: RunConfig, spec: LRFindSpec, seed: int, epochs: int) -> RunConfig:
    # The stored config says what ran: constant schedule (the sweep replaces it), the swept range.
    return cfgmod.replace(cfg, {"optim.lr": spec.min_lr, "schedule.name": "constant",
                                "schedule.max_lr": spec.max_lr, "schedule.bounds": "manual",
                                "schedule.warmup_epochs": 0.0, "train.seed": seed,
                                "train.epochs": epochs}, source="lr-find")


def run_range_test(config: RunConfig | dict, spec: LRFindSpec, *, seed: int | None = None,
                   store: Store | str | None = None, group_id: str | None = None,
                   name: str | None = None, bundle: DataBundle | None = None,
                   quiet: bool = True, stop_rule: StopRule | None = None) -> Run:
    """Run one LR range test as a stored run of kind ``lr-find`` and return it.

    Its metrics hold ``lr_lower``, ``lr_upper`` (None when the metric never improved, see
    ``bounds_reason``), ``suggestions``, ``best_val_accuracy``, ``stop_reason`` and a thinned
    ``curve``; the full per-batch record is the ``lr_find`` artifact (JSON). A ``stop_rule``
    that ends the test early leaves ``stop_reason: early`` and its verdict in ``early_stop``.

    >>> run = run_range_test({"model": {"name": "B2FL8"}}, LRFindSpec(max_lr=1, epochs=1),
    ...                      store="runs.db")                                  # doctest: +SKIP
    >>> run.metrics["lr_lower"] < run.metrics["lr_upper"]                      # doctest: +SKIP
    True
    """
    store = store if isinstance(store, Store) else Store(store)
    cfg = prepare_config(config)
    seed = cfg.train.seed if seed is None else seed
    bundle = bundle or load_data(cfg.data, seed)
    cfg = with_batch_size(cfg, bundle)
    ipe = batches_per_epoch(len(bundle.train), cfg.train.batch_size)
    cfg = _test_config(cfg, spec, seed, math.ceil(spec.iters / ipe) if spec.iters else spec.epochs)
    device = select_device(cfg.train.device)
    m = cfg.measure
    with recorded_run(store, "lr-find", cfg.model_dump(mode="json"), seed=seed,
                      name=name or cfg.name, device=device, threads=set_threads(cfg.train.threads),
                      group_id=group_id, memory=False, price_per_kwh=m.price_per_kwh,
                      grid_gco2_per_kwh=m.grid_gco2_per_kwh) as run:
        trainer = Trainer(cfg, store, run.id, bundle, quiet=quiet)
        curve = range_test(trainer, spec, Progress(cfg.train.epochs, quiet=quiet),
                           stop_rule=stop_rule, chance=chance_levels(bundle))
        _record(run, spec, curve, bundle)
    return stored(run)


def _record(run: RecordedRun, spec: LRFindSpec, curve: LRCurve, bundle: DataBundle) -> None:
    for row in curve.epochs:
        run.store.add_epoch(run.id, row["epoch"], {k: v for k, v in row.items() if k != "epoch"})
    bounds = suggest_bounds(curve, spec.rule)
    vals = [e["val_accuracy"] for e in curve.epochs if e.get("val_accuracy") is not None
            and math.isfinite(e["val_accuracy"])]
    (run.dir / "lr_find.json").write_text(json.dumps(_finite(asdict(curve)), allow_nan=False))
    run.artifacts = {"lr_find": "lr_find.json"}
    run.metrics = {
        "lr_find": spec.model_dump(mode="json"), "sweep": spec.sweep,
        "lr_lower": bounds["lower"],
        "lr_upper": bounds["upper"], "bounds_reason": bounds["reason"],
        "metric_gain": bounds["gain"], "suggestions": suggest_values(curve),
        "best_val_accuracy": max(vals) if vals else None,
        "final_val_accuracy": curve.epochs[-1].get("val_accuracy") if curve.epochs else None,
        "max_train_accuracy_smooth": max(curve.accuracy_smooth, default=None),
        "stop_reason": curve.stop_reason, "early_stop": curve.early_stop,
        "iterations": curve.iterations,
        "iters_per_epoch": curve.iters_per_epoch,
        # Training time only, as the engine counts it (validation excluded).
        "epochs_run": curve.iterations / curve.iters_per_epoch,
        "train_time_s": sum(e.get("time_s") or 0.0 for e in curve.epochs),
        "wall_time_s": curve.time_s, "classes": bundle.classes,
        "curve": thin(curve), **chance_levels(bundle),
    }


def _finite(value: Any) -> Any:
    # Strict JSON has no NaN: a diverged batch's loss becomes null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def aggregate_bounds(runs: list[dict], rule: BoundsRule) -> dict[str, Any]:
    """Median bounds and suggestions over several seeds' range tests (lower < upper kept).

    >>> aggregate_bounds([{"metrics": {"lr_lower": 1e-3, "lr_upper": 1e-2}},
    ...                   {"metrics": {"lr_lower": 2e-3, "lr_upper": None}}], BoundsRule())["lower"]
    0.001
    """
    def median(values: list[Any]) -> float | None:
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    ms = [r.get("metrics") or {} for r in runs]
    paired = [m for m in ms if m.get("lr_lower") is not None and m.get("lr_upper") is not None]
    lower = median([m["lr_lower"] for m in paired])
    upper = median([m["lr_upper"] for m in paired])
    if lower is not None and upper is not None and lower >= upper:
        lower = upper / rule.ratio
    keys = ("steepest", "valley", "min_div10")
    return {"lower": lower, "upper": upper, "seeds_with_bounds": len(paired),
            "suggestions": {k: median([(m.get("suggestions") or {}).get(k) for m in ms])
                            for k in keys}}


def lr_find(config: RunConfig | dict, spec: LRFindSpec, *, seeds: list[int] | None = None,
            store: Store | str | None = None, group_id: str | None = None,
            name: str | None = None, quiet: bool = True) -> Group:
    """Range tests over ``seeds`` (default: the config's seed), recorded as one group (kind
    ``lr-find``, or the group ``group_id`` given); bounds are medians over seeds.

    Returns the :class:`~convbench.results.Group` with its runs and the bounds: ``lower``,
    ``upper``, ``seeds_with_bounds``, ``suggestions``, ``min_lr``, ``max_lr``, ``mode``,
    ``rule``.

    >>> res = lr_find({"data": {"dataset": "digits"}, "model": {"name": "B2FL16"}},
    ...               LRFindSpec(min_lr=1e-4, max_lr=1, epochs=3))            # doctest: +SKIP
    >>> res["lower"] < res["upper"], len(res.runs)                             # doctest: +SKIP
    (True, 1)
    """
    store = store if isinstance(store, Store) else Store(store)
    cfg = prepare_config(config)
    seeds = seeds or [cfg.train.seed]
    label = name or cfg.name or cfg.model.name
    own = group_id is None
    if own:
        group_id = store.create_group(kind="lr-find", name=name or cfg.name, config={
            "base": cfg.model_dump(mode="json"), "lr_find": spec.model_dump(mode="json"),
            "seeds": seeds})
    try:
        runs = [run_range_test(cfg, spec, seed=s, store=store, group_id=group_id,
                               name=f"{label}-lr-find-s{s}", quiet=quiet) for s in seeds]
    except BaseException as err:
        if own:
            stopped = isinstance(err, KeyboardInterrupt | Stopped)
            store.update_group(group_id, status="stopped" if stopped else "failed")
        raise
    agg = aggregate_bounds(runs, spec.rule)
    result = {**agg, "min_lr": spec.min_lr, "max_lr": spec.max_lr, "mode": spec.sweep,
              "rule": spec.rule.model_dump()}
    if own:
        store.update_group(group_id, status="completed", metrics={"bounds": result})
    return Group({**load_group(store, group_id), **result, "runs": runs})


def auto_spec(cfg: RunConfig) -> LRFindSpec:
    """The range test that ``schedule.bounds: auto`` runs before training (docs/lr-find.md):
    linear over [optim.lr, schedule.max_lr] when max_lr is set, else exponential over two
    decades either side of optim.lr; a quarter of the training epochs, 1 to 8."""
    lr, top = cfg.optim.lr, cfg.schedule.max_lr
    epochs = max(1, min(8, round(cfg.train.epochs / 4)))
    if top is not None:
        if top <= lr:
            raise ConfigError(f"schedule.bounds=auto sweeps optim.lr ({lr:g}) to schedule.max_lr "
                              f"({top:g}); max_lr must be the larger.")
        return LRFindSpec(min_lr=lr, max_lr=top, mode="linear", epochs=epochs)
    return LRFindSpec(min_lr=lr / 100, max_lr=lr * 100, mode="exp", epochs=epochs)


def auto_bounds(cfg: RunConfig, bundle: DataBundle, store: Store, *, group_id: str | None = None,
                quiet: bool = True) -> tuple[RunConfig, dict[str, Any]]:
    """Run :func:`auto_spec`'s range test and return the config with its bounds filled in
    (``optim.lr`` = lower, ``schedule.max_lr`` = upper, ``bounds: manual``) plus a record of
    where they came from (stored in the training run's metrics as ``lr_bounds``)."""
    spec = auto_spec(cfg)
    run = run_range_test(cfg, spec, seed=cfg.train.seed, store=store, group_id=group_id,
                         name=f"{cfg.name or cfg.model.name}-auto-bounds", bundle=bundle,
                         quiet=quiet)
    m = run.metrics
    if m.get("lr_lower") is None:
        raise ConfigError(
            f"schedule.bounds=auto: the LR range test (run {run.id}) found no bounds in "
            f"[{spec.min_lr:g}, {spec.max_lr:g}]: {m.get('bounds_reason')}. Try another range "
            "(--lr and --set schedule.max_lr=X) or set the bounds by hand.")
    info = {"lower": m["lr_lower"], "upper": m["lr_upper"], "lr_find_run": run.id,
            "swept": [spec.min_lr, spec.max_lr], "mode": spec.sweep, "epochs": spec.epochs}
    bounded = cfgmod.replace(cfg, {"optim.lr": m["lr_lower"], "schedule.max_lr": m["lr_upper"],
                                   "schedule.bounds": "manual"}, source="schedule.bounds=auto")
    return bounded, info
