"""Run configuration: validated pydantic models, YAML load/dump, and the one config builder.

A :class:`RunConfig` fully describes one training run; it is stored with every run, so a
stored config re-run with ``convbench train`` reproduces the run. Every config of the package
(this one, detection's :class:`~convbench.detection.config.DetectConfig`, the search space)
is made of :class:`Section` models and the shared field types below, and is built by
:func:`build_config` (YAML file → command-line flags → ``--set a.b=v``) or changed by
:func:`replace`, with one override rule everywhere.

>>> cfg = RunConfig()
>>> cfg = apply_overrides(cfg, ["model.name=B2FL16", "train.epochs=3"])
>>> cfg.model.name, cfg.train.epochs
('B2FL16', 3)
>>> replace(cfg, {"train.epochs": 5}).train.epochs, cfg.train.epochs
(5, 3)
"""

from __future__ import annotations

import copy
import json
import re
import types
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ConfigError


class Section(BaseModel):
    """The base of every config model: unknown fields are errors, assignments re-validate.

    A top-level config (a *schema* for :func:`build_config`) may also set two class
    attributes: ``field_help`` (what an unknown-field error tells the user to read) and
    ``alternatives`` (groups of fields that give one quantity in different units).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    field_help: ClassVar[str] = "Run `convbench config` to see every field."
    # A layer (flags, --set, replace) that sets one field of a group replaces the others of
    # the layers below it: `--epochs 2` over a file that gives `train.iterations` trains 2
    # epochs. Setting two of a group in one layer is left to the model's validators.
    alternatives: ClassVar[tuple[tuple[str, ...], ...]] = ()


# ---- shared field types and validators ----------------------------------------------------

def _increasing_fractions(value: list[float], info: ValidationInfo) -> list[float]:
    if any(not 0 < x < 1 for x in value) or value != sorted(value):
        raise ValueError(f"{info.field_name} are increasing fractions of training between 0 "
                         "and 1")
    return value


def _distinct(seeds: list[int]) -> list[int]:
    if len(set(seeds)) < len(seeds):
        raise ValueError("a seed is listed twice; each seed is run once")
    return seeds


#: Points in training as increasing fractions of it (LR decay milestones, detection steps).
TrainingFractions = Annotated[list[float], AfterValidator(_increasing_fractions)]
#: A share of something that may be 0 but not all of it (dropout, momentum, smoothing).
Fraction = Annotated[float, Field(ge=0, lt=1)]
#: A probability (0 and 1 included).
Probability = Annotated[float, Field(ge=0, le=1)]
#: A random seed.
Seed = Annotated[int, Field(ge=0)]
#: Seeds of repeated runs: at least one, none twice.
Seeds = Annotated[list[int], Field(min_length=1), AfterValidator(_distinct)]
#: A device name: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
Device = Annotated[str, Field(description="auto, cpu, cuda or cuda:N")]

#: The electricity price runs are costed at unless configured (currency per kWh).
PRICE_PER_KWH = 0.246
#: Joules in a kilowatt-hour: energy is measured in J and priced in kWh.
JOULES_PER_KWH = 3.6e6
PricePerKwh = Annotated[float, Field(ge=0, description="electricity price (currency per kWh) "
                                                        "for the run's cost")]


# ---- the run config -----------------------------------------------------------------------

class AugmentConfig(Section):
    """Batch-level augmentation. ``preset`` fills the fields not set explicitly."""

    preset: Literal["none", "standard", "flip", "strong"] = Field(
        "none", description="standard: crop + flip; strong: + rotation and erasing")
    crop_padding: int | None = Field(None, ge=0, description="random crop after zero padding (px)")
    hflip: bool | None = Field(None, description="random horizontal flips")
    vflip: bool | None = Field(None, description="random vertical flips")
    rotate_deg: float | None = Field(None, ge=0, le=180, description="random rotation up to "
                                     "± this many degrees")
    erase_p: Probability | None = Field(None, description="random-erasing probability")
    # Mixing (off unless an alpha is set): a batch is blended with a shuffled copy of itself
    # and so are its labels (soft targets); not part of any preset.
    mixup_alpha: float | None = Field(None, gt=0, description="mixup: Beta(alpha, alpha) "
                                      "blend of two images and their labels (off if unset)")
    cutmix_alpha: float | None = Field(None, gt=0, description="cutmix: a Beta(alpha, alpha)-"
                                       "sized box pasted from another image (off if unset)")
    mix_p: Probability = Field(1.0, description="probability that a batch is mixed (mixup "
                               "or cutmix, half each when both are set)")


class DataConfig(Section):
    dataset: str = Field("digits", description="data set name (see `convbench datasets`)")
    data_dir: str | None = Field(None, description="where the data set's files are")
    download: bool = Field(False, description="fetch a missing data set from its official source")
    val_fraction: Fraction = Field(0.1, description="share of train held out for validation")
    train_limit: int | None = Field(None, gt=0, description="stratified subset of train")
    test_limit: int | None = Field(None, gt=0, description="stratified subset of test")
    image_size: int | None = Field(None, gt=0, description="resize images to this side (px)")
    channels: int | None = Field(None, ge=1, le=3, description="force 1 (grey) or 3 (RGB)")
    label_mode: Literal["fine", "coarse"] = Field("fine", description="CIFAR-100 label set")
    strict: bool = Field(False, description="an unreadable image fails the run (else skipped)")
    synthetic_size: int = Field(2000, gt=0, description="images per split of `synthetic`")
    augment: AugmentConfig = AugmentConfig()


Activation = Literal["relu", "gelu", "silu", "elu", "leaky_relu", "tanh"]


class HeadConfig(Section):
    """A new classifier head: ``units`` dense layers (each linear → [BN] → act → [dropout])."""

    units: list[int] = Field(default_factory=list, description="hidden dense layer widths")
    batch_norm: bool = Field(False, description="BatchNorm after each hidden layer")
    dropout: Fraction = Field(0.0, description="dropout after each hidden layer")
    activation: Activation = Field("relu", description="activation of the hidden layers")


class TransferConfig(Section):
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
    ] = Field("uniform", description="initialisation of the re-initialised parts")
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


class ModelConfig(Section):
    name: str = Field("simple-cnn", description="model (see `convbench models`), e.g. B2FL32 "
                      "or timm/rexnet_100")
    # The `blocks` constructor (study 004); also read by shorthand names like B2FL32.
    blocks: int = Field(2, ge=1, le=8, description="conv blocks (`blocks` models)")
    base_filters: int = Field(16, ge=1, description="filters of the first block, doubled per "
                              "block")
    convs_per_block: int = Field(2, ge=1, description="convolutions in each block")
    kernel_size: int = Field(3, ge=1, description="convolution kernel side")
    activation: Activation = Field("relu", description="activation after each convolution")
    init: Literal[
        "glorot_uniform", "glorot_normal", "kaiming_uniform", "kaiming_normal", "default"
    ] = Field("glorot_uniform", description="weight initialisation (default: PyTorch's)")
    batch_norm: bool = Field(False, description="BatchNorm after each convolution")
    dropout: Fraction = Field(0.0, description="dropout before each dense layer")
    dense_layers: int = Field(2, ge=0, description="dense layers of the head")
    dense_units: int | None = Field(None, gt=0, description="default: the flattened size")
    pretrained: bool | str = Field(False, description="true (published weights) or a path")
    options: dict[str, Any] = Field(default_factory=dict, description="extra kwargs (timm)")
    transfer: TransferConfig = TransferConfig()


class OptimConfig(Section):
    # Defaults are Keras' (Adam, 1e-3, batch 32), as in study 004: a safe start on new data.
    name: str = Field("adam", description="sgd, adam, adamw or rmsprop")
    lr: float = Field(0.001, gt=0, description="learning rate (the lower bound of cyclical "
                      "schedules)")
    momentum: Fraction = Field(0.9, description="SGD momentum (RMSprop: its momentum)")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD)")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty")
    no_decay_norm_bias: bool = Field(False, description="no weight decay on biases and "
                                     "normalisation weights (parameters with ≤ 1 dimension)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam/AdamW moment decays")
    eps: float = Field(1e-7, gt=0, description="Adam/AdamW/RMSprop denominator term")
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm")


# Schedules that move between optim.lr and schedule.max_lr, so bounds=auto can fill both.
TWO_BOUND_SCHEDULES = ("triangular", "triangular2", "exp_range", "one-cycle", "onecycle")


class ScheduleConfig(Section):
    name: str = Field("constant", description="constant, step, cosine, one-cycle, plateau, "
                      "triangular, triangular2, exp_range or warmup-step")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up (epochs)")
    warmup_iters: int = Field(0, ge=0, description="warmup-step: iterations of linear "
                              "warm-up from optim.lr × warmup_factor")
    warmup_factor: float = Field(0.001, gt=0, le=1, description="warmup-step: LR factor "
                                 "at iteration 0")
    milestones: TrainingFractions = Field(
        default_factory=lambda: [0.667, 0.889],
        description="step decay points as fractions of training",
    )
    gamma: float = Field(0.1, gt=0, description="step decay factor")
    # The cyclical schedules start from optim.lr (docs/training.md, `convbench lr-find`'s
    # bounds), so min_lr is the cosine floor only.
    min_lr: float = Field(0.0, ge=0, description="cosine floor (cyclical schedules start at "
                          "optim.lr)")
    max_lr: float | None = Field(None, gt=0, description="one-cycle peak; cyclical upper bound")
    cycle_epochs: float | None = Field(None, gt=0, description="cyclical half-cycle in epochs")
    cycle_iters: int | None = Field(None, gt=0, description="cyclical half-cycle in iterations")
    exp_gamma: float = Field(0.99994, gt=0, le=1, description="exp_range decay per iteration")
    bounds: Literal["manual", "auto"] = Field("manual", description="auto: an LR range test "
                                              "sets optim.lr and max_lr before training")
    plateau_patience: int = Field(3, ge=0, description="plateau: epochs without gain before "
                                  "a cut")
    plateau_factor: float = Field(0.1, gt=0, lt=1, description="plateau: LR factor of a cut")

    @model_validator(mode="after")
    def _auto_bounds_need_two(self) -> ScheduleConfig:
        if self.bounds == "auto" and self.name not in TWO_BOUND_SCHEDULES:
            raise ValueError(
                f"schedule.bounds=auto finds a lower and an upper LR, but schedule {self.name} "
                "uses one: choose triangular, triangular2, exp_range or one-cycle (or run "
                "`convbench lr-find` and pass its LR with --lr)")
        return self


class EarlyStopConfig(Section):
    enabled: bool = Field(False, description="stop when the metric stops improving")
    metric: Literal["val_accuracy", "val_loss"] = Field("val_accuracy",
                                                        description="the watched metric")
    patience: int = Field(5, ge=1, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, description="passes over the training split")
    # auto: 128, 64 or 32 by the training split's size (training/classification.py,
    # auto_batch_size), resolved once the data is loaded and stored as the number.
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="images per optimiser step (auto: the largest of 128, 64, 32 that "
        "leaves ≥ 200 steps an epoch)")
    eval_batch_size: int = Field(512, ge=1, description="images per evaluation batch")
    seed: Seed = Field(0, description="seed of split, initialisation, order and augmentation")
    device: Device = "auto"
    # auto: timed on this machine before the run trains (training/autotune.py, cached).
    channels_last: bool | Literal["auto"] = Field(
        "auto", description="channels-last memory layout (auto: the faster, timed here)")
    amp: bool | Literal["auto"] = Field(
        "auto", description="mixed precision where the device supports it (auto: on if "
        "faster, timed here)")
    compile: bool | Literal["auto"] = Field(
        "auto", description="torch.compile the model (auto: only for runs long enough to "
        "repay compiling, timed here)")
    threads: int | None = Field(None, ge=1, description="CPU threads (default: the cores "
                                "available)")
    label_smoothing: Fraction = Field(0.0, description="cross-entropy label smoothing")
    ema: float | None = Field(None, gt=0, lt=1, description="weight EMA decay (e.g. 0.999): "
                              "validation, best weights and test use the averaged weights")
    tta: bool = Field(False, description="test-time augmentation in evaluation: logits "
                      "averaged over flips and ±1 px shifts")
    early_stopping: EarlyStopConfig = EarlyStopConfig()
    max_time_s: float | None = Field(None, gt=0, description="stop after this wall time")


class MeasureConfig(Section):
    price_per_kwh: PricePerKwh = PRICE_PER_KWH
    grid_gco2_per_kwh: float | None = Field(None, ge=0, description="CO2 intensity of power")
    target_accuracy: float | None = Field(None, gt=0, le=1, description="for time-to-target")
    latency_repeats: int = Field(30, ge=1, description="timed batch-1 forward passes")
    throughput_batch: int = Field(256, ge=1, description="batch of the throughput probe")
    cost: bool = Field(True, description="false skips the timed inference probes (latency, "
                       "throughput); parameters, FLOPs and disk size are always measured")


class RunConfig(Section):
    name: str | None = Field(None, description="a name for the run")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    measure: MeasureConfig = MeasureConfig()


# ---- errors --------------------------------------------------------------------------------

def error_text(error: dict[str, Any]) -> str:
    """pydantic's message of one error, without the "Value error, " it puts before the text
    our own validators raise.

    >>> error_text({"msg": "Value error, max_lr must be above min_lr"})
    'max_lr must be above min_lr'
    """
    return re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])


def config_error(err: ValidationError, source: str, *, what: str = "config field",
                 help: str = Section.field_help) -> ConfigError:
    """Turn pydantic's first validation error into a one-line :class:`ConfigError`."""
    errors = err.errors()
    first = errors[0]
    loc = field_path(first["loc"])
    # A value that fits no member of a union (``int | "auto"``) fails once per member, each
    # error at the same field: say what every member would have taken.
    texts = list(dict.fromkeys(error_text(e) for e in errors if field_path(e["loc"]) == loc))
    if first["type"] == "extra_forbidden":
        msg = f"{source}: unknown {what} {loc!r}. {help}"
    elif not loc or isinstance(first.get("input"), dict):
        # a rule across fields (of the whole config or of one section): it names them itself
        msg = f"{source}: {error_text(first)}."
    else:
        value = first.get("input")
        msg = f"{source}: {loc} = {value!r} is invalid: {'; or '.join(texts)}."
    return ConfigError(msg)


#: The names pydantic adds to an error's location for the member of a union that failed.
_UNION_MEMBER = re.compile(r"^(bool|int|float|str|constrained-\w+|literal\[.*\])$")


def field_path(loc: tuple[Any, ...]) -> str:
    """The dotted field of a pydantic error location, without union member names.

    >>> field_path(("train", "amp", "bool")), field_path(("train", "batch_size", "literal['auto']"))
    ('train.amp', 'train.batch_size')
    """
    return ".".join(str(p) for p in loc if not _UNION_MEMBER.match(str(p)))


S = TypeVar("S", bound=Section)


def validate(schema: type[S], data: dict[str, Any] | None, source: str = "config") -> S:
    """Validate a plain dict into ``schema``, raising a one-line :class:`ConfigError`.

    >>> validate(RunConfig, {"train": {"epochs": 0}}, "c.yaml")
    Traceback (most recent call last):
    convbench.errors.ConfigError: c.yaml: train.epochs = 0 is invalid: ...
    """
    try:
        return schema.model_validate(data or {})
    except ValidationError as err:
        raise config_error(err, source, help=schema.field_help) from None


def build(data: dict[str, Any] | None = None, source: str = "config") -> RunConfig:
    """Validate a plain dict into a :class:`RunConfig`, raising :class:`ConfigError`."""
    return validate(RunConfig, data, source)


# ---- YAML ----------------------------------------------------------------------------------

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


# ---- the override rule and the builder -----------------------------------------------------

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


def parse_set(item: str, *, flag: str = "--set", example: str = "train.epochs=5",
              what: str = "key") -> tuple[str, Any]:
    """One ``a.b=v`` override as ``("a.b", value)``: the text after the first ``=`` parsed
    by :func:`parse_value`. Every command line option that takes overrides uses this.

    >>> parse_set("schedule.milestones=[0.4, 0.7]"), parse_set("optim.lr = 1e-3")
    (('schedule.milestones', [0.4, 0.7]), ('optim.lr', 0.001))
    """
    key, eq, text = item.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"{flag} {item!r}: expected {what}=value, e.g. {flag} {example}.")
    return key.strip(), parse_value(text.strip())


def parse_sets(items: list[str] | None, **kw: Any) -> dict[str, Any]:
    """``--set`` items as one mapping, dotted path → value (a later item wins)."""
    return dict(parse_set(item, **kw) for item in items or [])


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


def layer_config(schema: type[S], base: dict[str, Any], base_source: str,
                 layers: list[tuple[str, dict[str, Any]]]) -> S:
    """``base`` (a plain dict) with each ``(source, {dotted: value})`` layer set on top
    (later wins), the schema's ``alternatives`` rule applied, validated once. An error names
    the source of the layer that set the field it is about (else ``base_source``).

    >>> layer_config(RunConfig, {"train": {"epochs": 2}}, "c.yaml",
    ...              [("--set", {"train.epochs": 0})])
    Traceback (most recent call last):
    convbench.errors.ConfigError: --set: train.epochs = 0 is invalid: ...
    """
    data = copy.deepcopy(base)
    given: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source, values in layers:
        for key, value in values.items():
            set_path(data, key, value)
            given[key], origin[key] = value, source
    for group in schema.alternatives:
        if any(given.get(k) is not None for k in group):
            for k in group:
                if k not in given:
                    set_path(data, k, None)
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        loc = ".".join(str(p) for p in err.errors()[0]["loc"])
        related = [k for k in given if not loc or k == loc or k.startswith(loc + ".")
                   or loc.startswith(k + ".")]
        source = origin[related[-1]] if related else base_source
        raise config_error(err, source, help=schema.field_help) from None


def build_config(file: str | Path | None = None, flags: dict[str, Any] | None = None,
                 sets: list[str] | None = None, schema: type[S] = RunConfig) -> S:
    """The one way a command builds a config: the YAML ``file`` (optional), then ``flags``
    (dotted path → value; ``None`` means the flag was not given), then ``--set`` items
    (``a.b=v``); a later layer wins, and the schema's ``alternatives`` rule holds (a budget
    flag replaces the file's other budget). Raises :class:`ConfigError`.

    >>> cfg = build_config(None, {"train.epochs": 3, "optim.lr": None}, ["model.name=B2FL8"])
    >>> cfg.train.epochs, cfg.optim.lr, cfg.model.name
    (3, 0.001, 'B2FL8')
    """
    base = load_yaml(file) if file else {}
    layers = [("flags", {k: v for k, v in (flags or {}).items() if v is not None}),
              ("--set", parse_sets(sets))]
    return layer_config(schema, base, str(file) if file else "config", layers)


def replace(cfg: S, changes: dict[str, Any], *, source: str = "replace") -> S:
    """A validated copy of ``cfg`` with ``changes`` (dotted path → value) applied, by the
    same rule as :func:`build_config`: ``None`` clears a field, and a change to one of a
    group of ``alternatives`` replaces the others. ``cfg`` itself is left as it was.

    >>> base = RunConfig()
    >>> replace(base, {"train.epochs": 3, "model.name": "B2FL8"}).train.epochs
    3
    >>> replace(base, {"train.epochs": 0})
    Traceback (most recent call last):
    convbench.errors.ConfigError: replace: train.epochs = 0 is invalid: ...
    """
    return layer_config(type(cfg), cfg.model_dump(mode="json"), source, [(source, changes)])


def apply_overrides(cfg: RunConfig | dict[str, Any], sets: list[str]) -> RunConfig:
    """Apply ``key=value`` overrides (dotted paths) to a config and re-validate it."""
    base = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else dict(cfg)
    return layer_config(RunConfig, base, "config", [("--set", parse_sets(sets))])


# ---- listing (`convbench config`) -----------------------------------------------------------

def type_name(annotation: Any) -> str:
    """A field's type as people write it.

    >>> type_name(int | None), type_name(Literal["adam", "sgd"]), type_name(list[float])
    ('int | None', '"adam" | "sgd"', 'list[float]')
    """
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "any"
    if origin is Literal:
        return " | ".join(json.dumps(a) if isinstance(a, str) else repr(a) for a in args)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The section model of a field typed ``Section`` or ``Section | None``."""
    for a in (annotation, *get_args(annotation)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def config_fields(
    model: type[BaseModel] = RunConfig, prefix: str = ""
) -> list[tuple[str, str, Any, str]]:
    """Every settable dotted field: ``(path, type, default, description)`` (for `convbench
    config`). An optional section (``model.transfer.head``) is listed, then its fields.

    >>> next(row for row in config_fields() if row[0] == "train.epochs")
    ('train.epochs', 'int', 10, 'passes over the training split')
    """
    rows = []
    for name, field in model.model_fields.items():
        section = _section_of(field.annotation)
        if section is not None and section is field.annotation:
            rows += config_fields(section, f"{prefix}{name}.")
            continue
        default = field.get_default(call_default_factory=True)
        rows.append((f"{prefix}{name}", type_name(field.annotation), default,
                     field.description or ""))
        if section is not None:
            rows += config_fields(section, f"{prefix}{name}.")
    return rows


def default_of(schema: type[BaseModel], dotted: str) -> Any:
    """The default of a dotted field (for help texts that name it).

    >>> default_of(RunConfig, "train.epochs"), default_of(RunConfig, "optim.name")
    (10, 'adam')
    """
    model: Any = schema
    *sections, last = dotted.split(".")
    for name in sections:
        model = _section_of(model.model_fields[name].annotation)
    return model.model_fields[last].get_default(call_default_factory=True)
