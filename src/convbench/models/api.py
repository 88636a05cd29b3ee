"""The public model API: resolve names, build models, state input needs, list the catalog.

>>> from convbench.config import ModelConfig
>>> resolve(ModelConfig(name="B3FL8Adam")).model_dump(include={"name", "blocks", "base_filters"})
{'name': 'blocks', 'blocks': 3, 'base_filters': 8}
"""

from __future__ import annotations

import re
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from ..config import ModelConfig, config_error
from ..errors import ConfigError
from .catalog import BUILD_FIELDS, MODELS, ModelEntry
from .pretrained import PretrainedEntry
from .timm_models import PREFIX, TIMM, check_timm_name, is_timm_name
from .transfer import apply_transfer

# B<blocks>FL<filters>, optionally followed by the optimiser of the study's names (B2FL32Adam).
SHORTHAND = re.compile(r"^b(\d+)fl(\d+)([a-z]*)$", re.IGNORECASE)
# Listing order: from the study's own constructor to the big reference architectures.
FAMILY_ORDER = ["blocks", "small", "alexnet", "vgg", "resnet"]


def _registered_name(name: str) -> str:
    canonical = {n.lower(): n for n in MODELS.names()}.get(name.lower(), name)
    MODELS.get(canonical)  # raises UnknownNameError with the closest names
    return canonical


def resolve(cfg: ModelConfig) -> ModelConfig:
    """A validated copy of ``cfg`` with its name expanded to a registered model.

    ``B2FL32`` (any case, optional optimiser suffix) becomes ``name="blocks", blocks=2,
    base_filters=32``; ``timm/<arch>`` is checked against timm; other names must be
    registered (errors suggest the closest names). A named pretrained model
    (``efficientnet-lite0-imagenet``) gets ``pretrained=True``: the name means its weights.

    >>> resolve(ModelConfig(name="ResNet20")).name
    'resnet20'
    """
    name = cfg.name.strip()
    if match := SHORTHAND.match(name):
        update: dict[str, Any] = {"name": "blocks", "blocks": int(match[1]),
                                  "base_filters": int(match[2])}
    elif is_timm_name(name):
        update = {"name": check_timm_name(name)}
    else:
        update = {"name": _registered_name(name)}
        # A named pretrained model is its packaged weights, which its builder always loads:
        # record them, so a stored config never says "from scratch" for them.
        if cfg.pretrained is False and isinstance(MODELS.get(update["name"]), PretrainedEntry):
            update["pretrained"] = True
    try:
        return ModelConfig.model_validate({**cfg.model_dump(), **update})
    except ValidationError as err:
        raise config_error(err, f"model {name!r}") from None


def _entry(cfg: ModelConfig) -> ModelEntry:
    return TIMM if is_timm_name(cfg.name) else MODELS.get(cfg.name)


def ignored_fields(cfg: ModelConfig) -> list[str]:
    """``model.<field>=<value>`` for each field set away from its default that the model
    does not read (so it changes nothing). Shorthand names set ``blocks`` and
    ``base_filters`` for the ``blocks`` model, which reads them.

    >>> ignored_fields(ModelConfig(name="resnet20", blocks=3, dropout=0.3))
    ['model.blocks=3', 'model.dropout=0.3']
    >>> ignored_fields(ModelConfig(name="B3FL8", dropout=0.3))
    []
    """
    cfg = resolve(cfg)
    defaults = ModelConfig(name=cfg.name)
    unread = sorted(BUILD_FIELDS - _entry(cfg).reads)
    return [f"model.{f}={getattr(cfg, f)}" for f in unread
            if getattr(cfg, f) != getattr(defaults, f)]


def ignored_fields_note(cfg: ModelConfig) -> str | None:
    """One line telling the user which model fields have no effect, or None.

    >>> ignored_fields_note(ModelConfig(name="resnet20", blocks=3))
    'note: resnet20 does not read model.blocks=3; it has no effect on this model.'
    """
    ignored = ignored_fields(cfg)
    if not ignored:
        return None
    which = ", ".join(ignored)
    verb = "it has" if len(ignored) == 1 else "they have"
    return f"note: {resolve(cfg).name} does not read {which}; {verb} no effect on this model."


def input_requirements(cfg: ModelConfig, image_size: int, in_channels: int) -> tuple[int, int]:
    """(channels, side) the model wants for square data of ``image_size`` px, ``in_channels``.

    Every model here takes any channel count; sides below a model's minimum come back
    upsized (alexnet: 16 px; timm models: whatever they run at, e.g. CoAtNet multiples of 32).

    >>> input_requirements(ModelConfig(name="alexnet"), 8, 1)
    (1, 16)
    >>> input_requirements(ModelConfig(name="resnet20"), 8, 3)
    (3, 8)
    """
    cfg = resolve(cfg)
    return _entry(cfg).requirements(cfg, image_size, in_channels)


def create_model(cfg: ModelConfig, num_classes: int, in_channels: int,
                 image_size: int) -> nn.Module:
    """Build the model for ``num_classes`` and square ``in_channels``×``image_size`` inputs.

    Weights are drawn from PyTorch's global generator: call ``torch.manual_seed`` first for
    a reproducible initialisation. ``image_size`` must be what :func:`input_requirements`
    returns for the data.

    >>> torch.manual_seed(0) and None
    >>> net = create_model(ModelConfig(name="B2FL8"), num_classes=10, in_channels=1, image_size=8)
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    cfg = resolve(cfg)
    for label, value in (("num_classes", num_classes), ("in_channels", in_channels),
                         ("image_size", image_size)):
        if value < 1:
            raise ConfigError(f"create_model: {label} = {value} is invalid; it must be ≥ 1.")
    entry = _entry(cfg)
    _, side = entry.requirements(cfg, image_size, in_channels)
    if side != image_size:
        raise ConfigError(f"{cfg.name} needs {side}-px inputs, not {image_size}-px: set "
                          f"data.image_size={side} (input_requirements gives this size).")
    # Pretrained weights and model.transfer (no-op by default), see models/transfer.py.
    return apply_transfer(entry(cfg, num_classes, in_channels, image_size), cfg, num_classes,
                          in_channels, image_size)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``).

    >>> count_params(nn.Linear(4, 2))
    10
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _family_rank(name: str) -> int:
    family = MODELS.get(name).family
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)


def list_models() -> list[dict[str, Any]]:
    """The catalog for ``convbench models``: name, family, description, params.

    ``params`` is for 10 classes and 3×32×32 inputs with the default config (counted on the
    meta device, so listing allocates no weights); timm appears as one hint row.

    >>> next(m for m in list_models() if m["name"] == "custom-cnn")["params"]
    286250
    """
    rows = []
    for name in sorted(MODELS.names(), key=_family_rank):
        entry = MODELS.get(name)
        with torch.device("meta"):
            params = count_params(entry(resolve(ModelConfig(name=name)), 10, 3, 32))
        rows.append({"name": name, "family": entry.family, "description": entry.description,
                     "params": params})
    rows.append({"name": f"{PREFIX}<any timm name>", "family": TIMM.family,
                 "description": TIMM.description, "params": None})
    return rows
