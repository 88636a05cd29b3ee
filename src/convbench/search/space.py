"""Search spaces: a YAML file of fixed config fields (``base``), the parameters to vary
(``params``: choices and ranges over any config field) and the search settings.

>>> spec = parse({"base": {"data": {"dataset": "digits"}},
...               "params": {"model.blocks": [2, 3], "lr_range": [[1e-4, 1e-2], [1e-2, 1e-1]]},
...               "search": {"strategy": "screen"}})
>>> len(grid(spec))
4
>>> cfg = run_config(spec, grid(spec)[1])
>>> cfg.model.blocks, cfg.optim.lr, cfg.schedule.max_lr
(2, 0.01, 0.1)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from .. import config as cfgmod
from ..config import Probability, RunConfig, Section, Seeds
from ..errors import ConfigError
from ..training.lr_finder import BoundsRule

# A joint parameter sets several fields from one choice: `lr_range: [[1e-4, 1e-2], ...]`.
ALIASES = {"lr_range": ("optim.lr", "schedule.max_lr")}


class PrunerConfig(Section):
    """Early stopping of unpromising trials (Optuna pruners, or the ``screen`` rule).

    ``median`` is ``percentile`` at 50. ``asha`` is successive halving, ``hyperband`` runs
    several halving brackets. Steps are epochs of the first seed of each trial.
    """

    name: Literal["none", "median", "percentile", "asha", "hyperband", "screen"] = "none"
    percentile: float = Field(25.0, gt=0, lt=100, description="keep trials above this percentile")
    startup_trials: int = Field(2, ge=0, description="trials that are never pruned")
    warmup_epochs: int = Field(1, ge=0, description="epochs before pruning starts")
    min_resource: int = Field(1, ge=1, description="asha/hyperband: epochs of the first rung")
    reduction_factor: int = Field(3, ge=2, description="asha/hyperband: keep 1/this per rung")


class ScreenConfig(Section):
    """The study's screening: range tests, then a stated discard rule (docs/search.md)."""

    epochs: int = Field(8, ge=1, description="range-test length in epochs")
    iters: int | None = Field(None, ge=2, description="range-test length in iterations")
    # Two seeds: one seed's early score ranks the survivors (and so which is trained first)
    # and sets their LR bounds by noise (benchmark, docs/search.md). The study ran five.
    seeds: Seeds = Field(default_factory=lambda: [0, 1])
    mode: Literal["auto", "linear", "exp"] = "auto"
    score: Literal["best_val", "final_val"] = "best_val"
    aggregate: Literal["median", "mean"] = "median"
    chance: Literal["uniform", "majority", "max"] = "max"
    margin_chance: Probability = Field(0.05, description="needed above chance")
    margin_best: Probability | None = Field(0.10, description="allowed below group best")
    top_k: int | None = Field(None, ge=1, description="keep at most k per group")
    group_by: list[str] = Field(default_factory=list, description="params that form groups")
    bounds: BoundsRule = BoundsRule()
    schedule: str = Field("triangular2", description="schedule of the full training")
    # Cheaper screens (docs/search.md, "Cheaper screens"); the defaults are the variant that
    # won benchmarks/search_efficiency.py (the study's screen: all of them off): early stops
    # and successive halving of the survivors, the cheapest variant that ended on the best
    # for a reason (at 35 % of exhaustive compute, not the 25 % aimed at; the 14 % of all
    # options together rested on luck and a subset size). Adaptive seeds are off: they
    # add seeds only near a discard threshold, while the seeds matter most where no
    # threshold is, in the order of the survivors and their bounds; with seed 0 alone the
    # screen trained a configuration 1 point below the best first and halving pruned the best.
    stop_at_chance: Probability | None = Field(
        0.5, description="stop a range test still at chance after this share of it")
    stop_diverged: Probability | None = Field(
        0.2, description="stop a range test whose loss stayed above its start this share of it")
    stop_hopeless: bool = Field(
        True, description="stop a range test that cannot reach its group's best − margin_best")
    adaptive_seeds: bool = Field(
        False, description="one seed each; more only where the verdict is near a threshold")
    near: Probability = Field(0.03, description="adaptive seeds: first-round closeness")
    spread_z: float = Field(2.0, gt=0, description="adaptive seeds: near = within z × spread")
    survivors: Literal["full", "halving"] = Field(
        "halving", description="train the survivors in full, or by successive halving")
    halving_min_epochs: int = Field(1, ge=1, description="halving: epochs of the first rung")
    halving_factor: int = Field(3, ge=2, description="halving: keep 1/this per rung")
    subset: int | None = Field(
        None, gt=0, description="range tests on a stratified subset of this many train images")

    @property
    def stops_early(self) -> bool:
        """Whether any early-stop rule is on."""
        return bool(self.stop_at_chance or self.stop_diverged or self.stop_hopeless)


class AuditConfig(Section):
    """Also train the discarded (or pruned) configurations in full, to measure the heuristic."""

    enabled: bool = False
    sample: int | None = Field(None, ge=1, description="train this many of them (default all)")
    seed: int = 0
    top_k: int = Field(3, ge=1, description="a rule's discard is a miss if it ends in this top k")


class SearchConfig(Section):
    strategy: Literal["grid", "random", "tpe", "screen"] = "grid"
    pruner: PrunerConfig = PrunerConfig()
    trials: int | None = Field(None, ge=1, description="configurations to try")
    epochs: int | None = Field(None, ge=1, description="full training epochs per trial")
    seeds: Seeds = Field(default_factory=lambda: [0])
    aggregate: Literal["median", "mean"] = "median"
    time_budget_s: float | None = Field(None, gt=0)
    sampler_seed: int = 0


class SearchSpec(Section):
    """A whole search: what to vary, how to search, how to screen and audit."""

    name: str | None = None
    base: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    search: SearchConfig = SearchConfig()
    screen: ScreenConfig = ScreenConfig()
    audit: AuditConfig = AuditConfig()

    @model_validator(mode="after")
    def _screen_pruner(self) -> SearchSpec:
        if self.search.strategy == "screen" and self.search.pruner.name not in ("none", "screen"):
            raise ValueError("strategy screen is its own pruner; leave search.pruner.name unset")
        return self

    @property
    def screening(self) -> bool:
        """Whether trials start with a range test (strategy or pruner ``screen``)."""
        return self.search.strategy == "screen" or self.search.pruner.name == "screen"

    @property
    def prunes_training(self) -> bool:
        """Whether full training reports to a pruner: an Optuna pruner, or the screen's
        survivors trained by successive halving."""
        if self.search.strategy == "screen":
            return self.screen.survivors == "halving"
        return self.search.pruner.name not in ("none", "screen")

    @property
    def full_epochs(self) -> int:
        if self.search.epochs:
            return self.search.epochs
        return 50 if self.screening else base_config(self).train.epochs


class Param(BaseModel):
    """One varied parameter: a choice (``choices``) or a range (``low``..``high``)."""

    name: str
    paths: tuple[str, ...]
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    @property
    def is_choice(self) -> bool:
        return self.choices is not None


def _paths(name: str) -> tuple[str, ...]:
    if name in ALIASES:
        return ALIASES[name]
    return tuple(p.strip() for p in name.split(",") if p.strip())


def parse_param(name: str, value: Any) -> Param:
    """A ``params`` entry: a list (choices), ``{choices: [...]}``, or ``{low, high[, log,
    step, type: int|float]}``; a plain value is a one-choice parameter.

    >>> parse_param("optim.weight_decay", {"low": 1e-5, "high": 1e-2, "log": True}).integer
    False
    >>> parse_param("train.batch_size", {"low": 32, "high": 256, "log": True}).integer
    True
    """
    paths = _paths(name)
    where = f"search space: params.{name}"
    if not paths:
        raise ConfigError(f"{where}: empty parameter name.")
    if isinstance(value, dict) and "choices" in value:
        value = value["choices"]
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: an empty list of choices.")
        if len(paths) > 1 and any(not isinstance(v, list) or len(v) != len(paths) for v in value):
            raise ConfigError(f"{where} sets {', '.join(paths)}: every choice must be a list of "
                              f"{len(paths)} values, e.g. [1.0e-4, 1.0e-2].")
        return Param(name=name, paths=paths, choices=value)
    if isinstance(value, dict):
        unknown = set(value) - {"low", "high", "log", "step", "type"}
        if unknown or "low" not in value or "high" not in value:
            raise ConfigError(f"{where}: a range needs low and high (optional log, step, type); "
                              f"got {sorted(value)}.")
        if len(paths) > 1:
            raise ConfigError(f"{where}: a range sets one field; joint fields take choices.")
        low, high = value["low"], value["high"]
        if not all(isinstance(v, int | float) for v in (low, high)) or low >= high:
            raise ConfigError(f"{where}: low ({low!r}) must be a number below high ({high!r}).")
        kind = value.get("type") or ("int" if isinstance(low, int) and isinstance(high, int)
                                     else "float")
        if kind not in ("int", "float"):
            raise ConfigError(f"{where}: type must be int or float, not {kind!r}.")
        if value.get("log") and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0.")
        step = value.get("step")
        if step is not None and (not isinstance(step, int | float) or step <= 0):
            raise ConfigError(f"{where}: step ({step!r}) must be a number above 0.")
        if step is not None and value.get("log"):
            raise ConfigError(f"{where}: a log range takes no step (Optuna samples it "
                              "continuously); drop one of them.")
        return Param(name=name, paths=paths, low=low, high=high, log=bool(value.get("log")),
                     step=value.get("step"), integer=kind == "int")
    return Param(name=name, paths=paths, choices=[value])


def params_of(spec: SearchSpec) -> list[Param]:
    return [parse_param(name, value) for name, value in spec.params.items()]


def parse(data: dict[str, Any], source: str = "search space") -> SearchSpec:
    """Validate a search-space mapping (``name``, ``base``, ``params``, ``search``, ``screen``,
    ``audit``) and check every choice against the run config, raising ConfigError."""
    try:
        spec = SearchSpec.model_validate(data)
    except ValidationError as err:
        raise cfgmod.config_error(err, source, what="field",
                                  help="docs/search.md lists the fields.") from None
    params = params_of(spec)
    base_config(spec)
    for p in params:
        probes = p.choices if p.is_choice else [p.low, p.high]
        for value in probes:
            run_config(spec, {p.name: value})
    for name in spec.screen.group_by:
        if name not in spec.params:
            raise ConfigError(f"{source}: screen.group_by names {name!r}, which is not in params "
                              f"({', '.join(spec.params) or 'none'}).")
    if spec.search.strategy in ("grid", "screen"):
        ranges = [p.name for p in params if not p.is_choice]
        if ranges:
            raise ConfigError(f"{source}: strategy {spec.search.strategy} needs choices, but "
                              f"{', '.join(ranges)} is a range: give a list, or use random/tpe.")
    if spec.screening:
        # Sampled ranges are checked when a trial draws them; choices are checked here.
        all_choices = all(p.is_choice for p in params)
        first = {p.name: p.choices[0] if p.is_choice else p.low for p in params}
        for point in grid(spec) if all_choices else [first]:
            cfg = run_config(spec, point)
            if cfg.schedule.max_lr is None or cfg.schedule.max_lr <= cfg.optim.lr:
                raise ConfigError(
                    f"{source}: screening sweeps optim.lr to schedule.max_lr, so every "
                    "configuration needs max_lr above lr: add lr_range: [[1.0e-4, 1.0e-2]] "
                    "to params or set both in base.")
    return spec


def load(path: str | Path, overrides: list[str] | None = None) -> SearchSpec:
    """Load a search-space YAML; ``overrides`` are ``dotted.key=value`` like ``--set``."""
    return parse(override(cfgmod.load_yaml(path), overrides), source=str(path))


def override(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides to a space mapping. Under ``params`` the rest of
    the key is one parameter's name, dots and all: ``params.model.blocks=[2,4]``.

    >>> override({"params": {"model.blocks": [2, 3, 4]}}, ["params.model.blocks=[2,4]"])
    {'params': {'model.blocks': [2, 4]}}
    """
    data = dict(data)
    for item in overrides or []:
        key, value = cfgmod.parse_set(item, example="screen.epochs=4")
        if key.startswith("params."):
            data["params"] = {**(data.get("params") or {}), key[len("params."):]: value}
        else:
            cfgmod.set_path(data, key, value)
    return data


def base_config(spec: SearchSpec) -> RunConfig:
    return cfgmod.build(spec.base, source="search space: base")


def changes_of(point: dict[str, Any], params: list[Param]) -> dict[str, Any]:
    """A point's values (by parameter name) as dotted config fields (a joint parameter
    sets several).

    >>> params = [parse_param("lr_range", [[1e-4, 1e-2]])]
    >>> changes_of({"lr_range": [1e-4, 1e-2], "model.blocks": 3}, params)
    {'optim.lr': 0.0001, 'schedule.max_lr': 0.01, 'model.blocks': 3}
    """
    by_name = {p.name: p for p in params}
    changes = {}
    for name, value in point.items():
        p = by_name.get(name) or parse_param(name, value)
        values = value if len(p.paths) > 1 else [value]
        changes.update(zip(p.paths, values, strict=True))
    return changes


def run_config(spec: SearchSpec, point: dict[str, Any],
               extra: dict[str, Any] | None = None) -> RunConfig:
    """The run config of one point of the space, plus ``extra`` dotted fields (seed, …)."""
    changes = {**changes_of(point, params_of(spec)), **(extra or {})}
    try:
        return cfgmod.replace(base_config(spec), changes, source=f"search point {point}")
    except ConfigError as err:
        raise ConfigError(f"search space: {err}") from None


def grid(spec: SearchSpec) -> list[dict[str, Any]]:
    """Every combination of the choices, in the order of the YAML (the last varies fastest);
    a ``search.trials`` below the grid size keeps a seeded random sample, in grid order."""
    params = [p for p in params_of(spec) if p.is_choice]
    points = [dict(zip([p.name for p in params], combo, strict=True))
              for combo in itertools.product(*(p.choices for p in params))]
    n = spec.search.trials
    if n is not None and n < len(points):
        keep = sorted(random.Random(spec.search.sampler_seed).sample(range(len(points)), n))
        points = [points[i] for i in keep]
    return points


def key_of(point: dict[str, Any]) -> str:
    """A short stable id of a point (same values → same key).

    >>> key_of({"a": 1, "b": [1, 2]}) == key_of({"b": [1, 2], "a": 1})
    True
    """
    text = json.dumps(point, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _short(value: Any) -> str:
    if isinstance(value, float) and 0 < abs(value) < 1e-2:
        # Two significant digits: 0.00252 and 0.00322 must not both read "3e-3".
        mantissa, exp = f"{value:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "–".join(_short(v) for v in value)
    return str(value)


def label_of(point: dict[str, Any]) -> str:
    """A compact human label of a point.

    >>> label_of({"model.blocks": 2, "optim.name": "adam", "lr_range": [1e-4, 1e-2]})
    'blocks=2 optim=adam lr_range=1e-4–0.01'
    """
    parts = []
    for name, value in point.items():
        segs = name.split(".")
        short = segs[-2] if segs[-1] == "name" and len(segs) > 1 else segs[-1]
        parts.append(f"{short}={_short(value)}")
    return " ".join(parts) or "base"


def encode(value: Any) -> Any:
    """Optuna's categorical choices are scalars: lists travel as JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def suggest(trial: Any, spec: SearchSpec) -> dict[str, Any]:
    """Ask an Optuna trial for a point (enqueued trials get their fixed values back)."""
    point = {}
    for p in params_of(spec):
        if p.is_choice:
            value = decode(trial.suggest_categorical(p.name, [encode(c) for c in p.choices]))
        elif p.integer:
            value = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log,
                                      step=int(p.step or 1))
        else:
            value = trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
        point[p.name] = value
    return point


def encoded(point: dict[str, Any]) -> dict[str, Any]:
    """A point as Optuna params (for ``enqueue_trial``)."""
    return {k: encode(v) for k, v in point.items()}


def group_of(spec: SearchSpec, point: dict[str, Any]) -> str:
    """The screening group of a point: its values of ``screen.group_by`` (one group if none)."""
    return label_of({k: point[k] for k in spec.screen.group_by if k in point}) \
        if spec.screen.group_by else "all"
