"""The model registry: one :class:`ModelEntry` per name, added with :func:`register`.

>>> "resnet20" in MODELS
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..config import ModelConfig
from ..registry import Registry

BuildFn = Callable[[ModelConfig, int, int, int], nn.Module]

# The ModelConfig fields that shape a network. Each model reads some of them; a value set
# for one it does not read changes nothing, and the user is told (see api.ignored_fields).
BUILD_FIELDS = frozenset({
    "blocks", "base_filters", "convs_per_block", "kernel_size", "activation", "init",
    "batch_norm", "dropout", "dense_layers", "dense_units", "options",
})


@dataclass(frozen=True)
class ModelEntry:
    """How to build one model, plus what ``convbench models`` shows about it.

    ``min_side``: smaller inputs are upsized to it by ``input_requirements`` (the model's
    pooling would otherwise shrink the feature map to nothing). ``reads``: the
    :data:`BUILD_FIELDS` the builder uses.
    """

    build: BuildFn
    family: str
    description: str
    min_side: int = 1
    reads: frozenset[str] = BUILD_FIELDS

    def __call__(self, cfg: ModelConfig, num_classes: int, in_channels: int,
                 image_size: int) -> nn.Module:
        return self.build(cfg, num_classes, in_channels, image_size)

    def requirements(self, cfg: ModelConfig, image_size: int,
                     in_channels: int) -> tuple[int, int]:
        """(channels, side) this model wants for data of ``image_size`` and ``in_channels``."""
        return in_channels, max(image_size, self.min_side)


MODELS: Registry[ModelEntry] = Registry("model", listing="convbench models")


def register(name: str, family: str, description: str, min_side: int = 1,
             reads: frozenset[str] | set[str] = BUILD_FIELDS) -> Callable[[BuildFn], BuildFn]:
    """Register a builder ``fn(cfg, num_classes, in_channels, image_size) -> nn.Module``.

    The built-in models register this way, e.g. ``@register("simple-cnn", "blocks", …)``:

    >>> MODELS.get("simple-cnn").family
    'blocks'
    """

    def deco(fn: BuildFn) -> BuildFn:
        MODELS.register(name)(ModelEntry(fn, family, description, min_side, frozenset(reads)))
        return fn

    return deco
