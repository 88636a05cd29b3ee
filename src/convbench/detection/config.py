"""Detection run configuration (same rules as :mod:`convbench.config`: unknown fields and bad
values raise :class:`~convbench.errors.ConfigError`).

The training budget is given in epochs *or* iterations; :func:`budget` converts one into the
other with ``iterations = ceil(epochs × train images / batch)``, and runs record both.

>>> cfg = build({"model": {"backbone": "vovnet39"}, "train": {"iterations": 500}})
>>> cfg.model.backbone, budget(cfg.train, train_images=45)
('vovnet39', (500, 22.22222222222222))
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from ..config import (
    PRICE_PER_KWH,
    Device,
    Fraction,
    PricePerKwh,
    Section,
    Seed,
    TrainingFractions,
    layer_config,
    load_yaml,
    parse_sets,
    validate,
)
from ..errors import ConfigError


class DetectDataConfig(Section):
    source: Literal["synth", "coco", "pagexml"] = Field("synth", description="where the "
                                                         "pages come from")
    path: str | None = Field(None, description="COCO JSON file, PAGE-XML folder, or the "
                             "folder synthetic pages are written to")
    image_dir: str | None = Field(None, description="image folder (default: beside the "
                                  "annotations)")
    classes: list[str] | None = Field(None, description="keep and order only these classes")
    region_map: dict[str, str] | None = Field(None, description="PAGE region key → class, "
                                              "e.g. {'TextRegion:lyrics': 'lyrics'}")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="share of the pages held out "
                                 "for evaluation")
    split_seed: Seed = Field(0, description="seed of the train/test split")
    strict: bool = Field(False, description="raise on the first bad annotation")
    synth_pages: int = Field(60, ge=2, description="synthetic pages to draw")
    synth_size: int = Field(448, ge=64, description="synthetic page height (px)")
    synth_seed: Seed = Field(0, description="seed of the synthetic pages")


class DetectModelConfig(Section):
    arch: Literal["maskrcnn", "fasterrcnn"] = Field("maskrcnn", description="maskrcnn (boxes "
                                                    "and masks) or fasterrcnn (boxes)")
    backbone: str = Field("resnet18", description="backbone (see `convbench detect "
                          "backbones`, or timm/<name>)")
    trainable_layers: int = Field(5, ge=0, le=5, description="trainable units: stem + 4 stages")
    pretrained: bool | str | None = Field(None, description="backbone weights: true for the "
                                          "published ImageNet weights (cache or download), or "
                                          "a safetensors / torch.save file")
    norm: Literal["bn", "frozen", "gn"] = Field("bn", description="backbone normalisation: "
                                                "BatchNorm, frozen BatchNorm or GroupNorm")
    fpn_channels: int = Field(64, ge=8, description="FPN, RPN and mask-head width "
                              "(Detectron2: 256; 64 is 2× faster on a CPU)")
    min_size: int = Field(448, ge=32, description="shorter image side fed to the model (px)")
    max_size: int = Field(640, ge=32, description="cap on the longer side (px)")
    anchor_sizes: list[int] = Field(default_factory=lambda: [16, 32, 64, 128, 256],
                                    description="one anchor size per FPN level (5)")
    aspect_ratios: list[float] = Field(default_factory=lambda: [0.0625, 0.125, 0.25, 0.5, 1.0],
                                       description="anchor height/width; layout lines are wide")
    rpn_pre_nms_train: int = Field(1000, ge=1, description="RPN proposals before NMS (train)")
    rpn_post_nms_train: int = Field(500, ge=1, description="RPN proposals kept after NMS "
                                    "(train)")
    rpn_pre_nms_test: int = Field(500, ge=1, description="RPN proposals before NMS (test)")
    rpn_post_nms_test: int = Field(300, ge=1, description="RPN proposals kept after NMS (test)")
    box_batch_per_image: int = Field(64, ge=1, description="sampled RoIs per image "
                                     "(Detectron2: 512)")
    representation_size: int = Field(256, ge=8, description="box head MLP width "
                                     "(Detectron2: 1024)")
    detections_per_image: int = Field(100, ge=1, description="detections kept per image")
    score_threshold: Fraction = Field(0.05, description="drop detections scored below this")

    @field_validator("anchor_sizes")
    @classmethod
    def _five(cls, v: list[int]) -> list[int]:
        if len(v) != 5 or any(s <= 0 for s in v):
            raise ValueError("give 5 positive anchor sizes, one per FPN level (P2–P6)")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> DetectModelConfig:
        if self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) must be ≥ min_size ({self.min_size})")
        return self


BUDGET_FIELDS = ("train.epochs", "train.iterations")


class DetectTrainConfig(Section):
    epochs: float | None = Field(None, gt=0, description="budget in passes over train")
    iterations: int | None = Field(None, gt=0, description="budget in optimiser steps")
    batch_size: int = Field(2, ge=1, description="images per iteration")
    optimizer: str = Field("sgd", description="sgd, adam, adamw or rmsprop (the same "
                           "optimisers as `convbench train`)")
    schedule: str = Field("warmup-step", description="LR schedule (see `convbench train "
                          "--help`); warmup-step reads warmup_iters, warmup_factor, steps "
                          "and gamma")
    lr: float = Field(0.02, gt=0, description="base learning rate")
    momentum: Fraction = Field(0.9, description="SGD momentum")
    weight_decay: float = Field(1e-4, ge=0, description="L2 penalty")
    warmup_iters: int = Field(50, ge=0, description="linear warm-up from lr × warmup_factor")
    warmup_factor: float = Field(0.001, gt=0, le=1, description="LR factor at the start of "
                                 "the warm-up")
    steps: TrainingFractions = Field(default_factory=lambda: [0.667, 0.889],
                                     description="LR decay points as fractions of training")
    gamma: float = Field(0.1, gt=0, le=1, description="LR factor at each step")
    grad_clip: float | None = Field(10.0, gt=0, description="max gradient norm")
    hflip: bool = Field(False, description="random horizontal flips")
    seed: Seed = Field(0, description="seed of initialisation, page order and flips")
    device: Device = "auto"
    threads: int | None = Field(None, ge=1, description="CPU threads (default: the cores "
                                "available)")
    checkpoint_every: int | None = Field(None, ge=1, description="iterations between "
                                         "checkpoints (default: every epoch)")
    max_time_s: float | None = Field(None, gt=0, description="stop after this wall time")

    @field_validator("optimizer", "schedule")
    @classmethod
    def _registered(cls, v: str, info) -> str:
        # The registries of the shared trainer; an unknown name fails with "did you mean".
        from ..training.optim import OPTIMIZERS
        from ..training.schedules import SCHEDULES

        (OPTIMIZERS if info.field_name == "optimizer" else SCHEDULES).get(v)
        return v

    @model_validator(mode="after")
    def _one_budget(self) -> DetectTrainConfig:
        if self.epochs is not None and self.iterations is not None:
            raise ValueError("give the budget as epochs or as iterations, not both")
        return self


class DetectMeasureConfig(Section):
    price_per_kwh: PricePerKwh = PRICE_PER_KWH
    energy: bool = Field(True, description="measure energy (RAPL/NVML, else an estimate)")
    cost: bool = Field(True, description="false skips the timed inference probes (latency, "
                       "throughput); parameters, FLOPs and disk size are always measured")
    latency_repeats: int = Field(10, ge=1, description="timed batch-1 forwards for latency")
    throughput_batch: int = Field(2, ge=1, description="pages per forward for throughput")


class DetectConfig(Section):
    field_help: ClassVar[str] = "See docs/detection.md and examples/detect-synth.yaml."
    # The budget is given once, in either unit: a flag or --set giving one replaces the
    # file's other (see convbench.config.build_config).
    alternatives: ClassVar[tuple[tuple[str, ...], ...]] = (BUDGET_FIELDS,)

    name: str | None = Field(None, description="a name for the run")
    data: DetectDataConfig = DetectDataConfig()
    model: DetectModelConfig = DetectModelConfig()
    train: DetectTrainConfig = DetectTrainConfig()
    measure: DetectMeasureConfig = DetectMeasureConfig()


DEFAULT_EPOCHS = 12.0


def budget(train: DetectTrainConfig, train_images: int) -> tuple[int, float]:
    """``(iterations, epochs)`` of a training budget given in either unit.

    >>> budget(DetectTrainConfig(epochs=2, batch_size=4), train_images=10)
    (5, 2.0)
    """
    if train_images < 1:
        raise ConfigError("No training images: the budget cannot be converted.")
    if train.iterations is not None:
        iters = train.iterations
        return iters, iters * train.batch_size / train_images
    epochs = train.epochs if train.epochs is not None else DEFAULT_EPOCHS
    return max(1, math.ceil(epochs * train_images / train.batch_size)), float(epochs)


def build(data: dict[str, Any] | None = None, source: str = "detect config") -> DetectConfig:
    """Validate a plain dict into a :class:`DetectConfig`, raising :class:`ConfigError`."""
    return validate(DetectConfig, data, source)


def load(path: str | Path) -> DetectConfig:
    """Load and validate a YAML detection config.

    >>> load("examples/detect-synth.yaml").model.arch   # doctest: +SKIP
    'maskrcnn'
    """
    return build(load_yaml(path), source=str(path))


def apply_overrides(cfg: DetectConfig | dict[str, Any], sets: list[str],
                    values: dict[str, Any] | None = None) -> DetectConfig:
    """Apply command-line ``values`` (dotted path → value, from flags) and then ``key=value``
    overrides, and re-validate (:func:`convbench.config.layer_config`, the rule of every
    config).

    A budget set here replaces the other budget of ``cfg``: the command line wins over the
    config file. Setting both budgets here is still an error; ``train.epochs=null`` clears one.

    >>> apply_overrides(DetectConfig(), ["model.backbone=resnet50c"]).model.backbone
    'resnet50c'
    >>> file = build({"train": {"iterations": 600}})
    >>> apply_overrides(file, [], {"train.epochs": 2}).train.iterations is None
    True
    """
    base = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else dict(cfg)
    sets_given = parse_sets(sets, example="train.iterations=200")
    return layer_config(DetectConfig, base, "config",
                        [("flags", values or {}), ("--set", sets_given)])
