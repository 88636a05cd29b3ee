"""Run configuration: validated pydantic models, YAML load/dump and ``--set key=value`` overrides.

A :class:`RunConfig` fully describes one training run; it is stored with every run, so a
stored config re-run with ``convbench train`` reproduces the run.

>>> cfg = RunConfig()
>>> cfg = apply_overrides(cfg, ["model.name=B2FL16", "train.epochs=3"])
>>> cfg.model.name, cfg.train.epochs
('B2FL16', 3)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class AugmentConfig(_Section):
    """Batch-level augmentation. ``preset`` fills the fields not set explicitly."""

    preset: Literal["none", "standard", "flip", "strong"] = "none"
    crop_padding: int | None = Field(None, ge=0, description="random crop after zero padding (px)")
    hflip: bool | None = None
    vflip: bool | None = None
    rotate_deg: float | None = Field(None, ge=0, le=180)
    erase_p: float | None = Field(None, ge=0, le=1, description="random-erasing probability")


class DataConfig(_Section):
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    val_fraction: float = Field(0.1, ge=0, lt=1)
    train_limit: int | None = Field(None, gt=0, description="stratified subset of train")
    test_limit: int | None = Field(None, gt=0, description="stratified subset of test")
    image_size: int | None = Field(None, gt=0, description="resize images to this side (px)")
    channels: int | None = Field(None, ge=1, le=3, description="force 1 (grey) or 3 (RGB)")
    label_mode: Literal["fine", "coarse"] = "fine"
    strict: bool = False
    synthetic_size: int = Field(2000, gt=0, description="images per split of `synthetic`")
    augment: AugmentConfig = AugmentConfig()


Activation = Literal["relu", "gelu", "silu", "elu", "leaky_relu", "tanh"]


class HeadConfig(_Section):
    """A new classifier head: ``units`` dense layers (each linear → [BN] → act → [dropout])."""

    units: list[int] = Field(default_factory=list, description="hidden dense layer widths")
    batch_norm: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    activation: Activation = "relu"


class TransferConfig(_Section):
    """Transfer learning on top of ``model.pretrained`` (see docs/transfer.md).

    Selectors name parts of the model: ``backbone``, ``head``, ``all``, unit indices or slices
    of the backbone (``0``, ``0:3``, ``-2:``), unit names (``blocks.3``) or parameter-name
    globs (``features.1*``); ``convbench analyze layers`` lists the units.
    """

    freeze: int | str | list[str] = Field(
        "none", description="none | backbone | N (first N backbone units) | selector(s)"
    )
    freeze_bn: bool = Field(True, description="keep frozen BatchNorm layers in eval mode")
    unfreeze_after: int | None = Field(
        None, ge=1, description="epochs with the frozen part (default: backbone) frozen"
    )
    truncate: int | None = Field(None, ge=1, description="keep only the first N backbone units")
    head: HeadConfig | None = Field(None, description="replace the classifier by a new head")
    reinit: list[str] = Field(default_factory=list, description="selectors to re-initialise")
    reinit_init: Literal[
        "uniform", "glorot_uniform", "glorot_normal", "kaiming_uniform", "kaiming_normal"
    ] = "uniform"
    lr_scale: dict[str, float] = Field(
        default_factory=dict, description="selector → LR multiplier (later entries win)"
    )
    discriminative: tuple[float, float] | None = Field(
        None, description="LR multipliers spread geometrically from the first unit to the head"
    )

    @field_validator("lr_scale")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        if any(s < 0 for s in v.values()):
            raise ValueError("LR multipliers must be ≥ 0")
        return v

    @field_validator("discriminative")
    @classmethod
    def _positive(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and min(v) <= 0:
            raise ValueError("discriminative multipliers (low, high) must be > 0")
        return v


class ModelConfig(_Section):
    name: str = "simple-cnn"
    # The `blocks` constructor (study 004); also read by shorthand names like B2FL32.
    blocks: int = Field(2, ge=1, le=8)
    base_filters: int = Field(16, ge=1)
    convs_per_block: int = Field(2, ge=1)
    kernel_size: int = Field(3, ge=1)
    activation: Literal["relu", "gelu", "silu", "elu", "leaky_relu", "tanh"] = "relu"
    init: Literal[
        "glorot_uniform", "glorot_normal", "kaiming_uniform", "kaiming_normal", "default"
    ] = "glorot_uniform"
    batch_norm: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    dense_layers: int = Field(2, ge=0)
    dense_units: int | None = Field(None, gt=0, description="default: the flattened size")
    pretrained: bool | str = Field(False, description="true (published weights) or a path")
    options: dict[str, Any] = Field(default_factory=dict, description="extra kwargs (timm)")
    transfer: TransferConfig = TransferConfig()


class OptimConfig(_Section):
    # Defaults are Keras' (Adam, 1e-3, batch 32), as in study 004: a safe start on new data.
    name: str = "adam"
    lr: float = Field(0.001, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-7, gt=0)
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm")


# Schedules that move between optim.lr and schedule.max_lr, so bounds=auto can fill both.
TWO_BOUND_SCHEDULES = ("triangular", "triangular2", "exp_range", "one-cycle", "onecycle")


class ScheduleConfig(_Section):
    name: str = "constant"
    warmup_epochs: float = Field(0.0, ge=0)
    milestones: list[float] = Field(
        default_factory=lambda: [0.667, 0.889],
        description="step decay points as fractions of training",
    )
    gamma: float = Field(0.1, gt=0)
    min_lr: float = Field(0.0, ge=0, description="cosine floor; cyclical lower bound")
    max_lr: float | None = Field(None, gt=0, description="one-cycle peak; cyclical upper bound")
    cycle_epochs: float | None = Field(None, gt=0, description="cyclical half-cycle in epochs")
    cycle_iters: int | None = Field(None, gt=0, description="cyclical half-cycle in iterations")
    exp_gamma: float = Field(0.99994, gt=0, le=1, description="exp_range decay per iteration")
    bounds: Literal["manual", "auto"] = "manual"
    plateau_patience: int = Field(3, ge=0)
    plateau_factor: float = Field(0.1, gt=0, lt=1)

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < m < 1 for m in v) or v != sorted(v):
            raise ValueError("milestones are increasing fractions of training between 0 and 1")
        return v

    @model_validator(mode="after")
    def _auto_bounds_need_two(self) -> ScheduleConfig:
        if self.bounds == "auto" and self.name not in TWO_BOUND_SCHEDULES:
            raise ValueError(
                f"schedule.bounds=auto finds a lower and an upper LR, but schedule {self.name} "
                "uses one: choose triangular, triangular2, exp_range or one-cycle (or run "
                "`convbench lr-find` and pass its LR with --lr)")
        return self


class EarlyStopConfig(_Section):
    enabled: bool = False
    metric: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    seed: int = Field(0, ge=0)
    device: str = "auto"
    channels_last: bool = True
    amp: bool = True
    threads: int | None = Field(None, ge=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    early_stopping: EarlyStopConfig = EarlyStopConfig()
    max_time_s: float | None = Field(None, gt=0, description="stop after this wall time")


class MeasureConfig(_Section):
    price_per_kwh: float = Field(0.246, ge=0)
    grid_gco2_per_kwh: float | None = Field(None, ge=0, description="CO2 intensity of power")
    target_accuracy: float | None = Field(None, gt=0, le=1, description="for time-to-target")
    latency_repeats: int = Field(30, ge=1)
    throughput_batch: int = Field(256, ge=1)
    cost: bool = Field(True, description="false skips the timed inference probes (latency, "
                       "throughput); parameters, FLOPs and disk size are always measured")


class RunConfig(_Section):
    name: str | None = None
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    measure: MeasureConfig = MeasureConfig()


def error_text(error: dict[str, Any]) -> str:
    """pydantic's message of one error, without the "Value error, " it puts before the text
    our own validators raise.

    >>> error_text({"msg": "Value error, max_lr must be above min_lr"})
    'max_lr must be above min_lr'
    """
    return re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])


def config_error(err: ValidationError, source: str, *, what: str = "config field",
                 help: str = "Run `convbench config` to see every field.") -> ConfigError:
    """Turn pydantic's first validation error into a one-line :class:`ConfigError`."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        msg = f"{source}: unknown {what} {loc!r}. {help}"
    elif not loc or isinstance(first.get("input"), dict):
        # a rule across fields (of the whole config or of one section): it names them itself
        msg = f"{source}: {error_text(first)}."
    else:
        value = first.get("input")
        msg = f"{source}: {loc} = {value!r} is invalid: {error_text(first)}."
    return ConfigError(msg)


def build(data: dict[str, Any] | None = None, source: str = "config") -> RunConfig:
    """Validate a plain dict into a :class:`RunConfig`, raising :class:`ConfigError`."""
    try:
        return RunConfig.model_validate(data or {})
    except ValidationError as err:
        raise config_error(err, source) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with clear errors for missing files and bad syntax."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} not found. Check the path.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file in UTF-8. Give a YAML config "
                          "(see examples/).") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}. Fix the syntax and retry.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of config sections, got {type(data).__name__}."
        )
    return data


def load(path: str | Path) -> RunConfig:
    """Load and validate a YAML run config.

    >>> load("examples/digits-blocks.yaml").model.name  # doctest: +SKIP
    'blocks'
    """
    return build(load_yaml(path), source=str(path))


def dump(cfg: BaseModel) -> str:
    """The config as YAML (only JSON-compatible values, so it can be re-loaded)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value with YAML rules: ``3`` → int, ``1e-3`` → float, ``[1,2]`` → list."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads "1e-3" as a string; people mean a number.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted == "a.b"``, creating sections as needed."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {key!r} is a value, not a section.")
        node = child
    node[keys[-1]] = value


def apply_overrides(cfg: RunConfig | dict[str, Any], sets: list[str]) -> RunConfig:
    """Apply ``key=value`` overrides (dotted paths) to a config and re-validate it."""
    data = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else dict(cfg)
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.epochs=5.")
        key, text = item.split("=", 1)
        set_path(data, key.strip(), parse_value(text.strip()))
    return build(data, source="--set")


def config_fields(
    model: type[BaseModel] = RunConfig, prefix: str = ""
) -> list[tuple[str, str, Any]]:
    """Every settable dotted field with its type and default (for `convbench config`)."""
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += config_fields(ann, f"{prefix}{name}.")
        else:
            default = field.get_default(call_default_factory=True)
            rows.append((f"{prefix}{name}", str(ann).replace("typing.", ""), default))
    return rows
