"""Any timm architecture as ``timm/<name>``, built from scratch (``pretrained=False``).

timm models differ in which input sizes they accept: most convnets run at any size, some
need a minimum (pooling would reach 0 px), attention models are built for one size (often
changeable through ``img_size``). Rather than keep a table, the size a model needs is found
by building it on PyTorch's ``meta`` device (no memory, no weight init) and running a
forward pass there, from the data's size upwards in steps of 32 px.

>>> from convbench.config import ModelConfig
>>> timm_requirements(ModelConfig(name="timm/coatnet_0_rw_224"), 28, 1)
(1, 32)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError, unknown_name
from .catalog import ModelEntry

PREFIX = "timm/"
# Candidate input sides grow in steps of the usual total stride of timm backbones.
SIDE_STEP = 32
TIMM_LISTING = 'python -c "import timm; print(timm.list_models())"'


def is_timm_name(name: str) -> bool:
    """Whether a model name refers to timm.

    >>> is_timm_name("timm/rexnet_100"), is_timm_name("resnet20")
    (True, False)
    """
    return name.lower().startswith(PREFIX)


def check_timm_name(name: str) -> str:
    """The name normalised to ``timm/<arch>``, or an UnknownNameError with close timm names.

    >>> check_timm_name("TIMM/rexnet_100")
    'timm/rexnet_100'
    """
    arch = name[len(PREFIX):]
    if not timm.is_model(arch):
        known = [PREFIX + n for n in timm.list_models()]
        raise unknown_name("timm model", name, known, listing=TIMM_LISTING)
    return PREFIX + arch


def _options_key(options: dict[str, Any]) -> str:
    # A hashable, order-independent form of the options, for the probe caches.
    return json.dumps(options, sort_keys=True, default=str)


def _create(arch: str, in_channels: int, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes,
                                 in_chans=in_channels, **kwargs)
    except TypeError as err:
        raise ConfigError(f"timm model {arch!r} rejected model.options {kwargs}: {err}. "
                          "Check the option names against the timm model's arguments.") from None


def _probe_model(arch: str, in_channels: int, kwargs: dict[str, Any]) -> nn.Module:
    """The model on the meta device, or on the CPU if its builder cannot run on meta."""
    try:
        with torch.device("meta"):
            return _create(arch, in_channels, 2, kwargs)
    except ConfigError:
        raise
    except Exception:  # some builders read tensor values during init, impossible on meta
        return _create(arch, in_channels, 2, kwargs)


@lru_cache(maxsize=512)
def _runs_at(arch: str, in_channels: int, options_key: str, side: int, resize: bool) -> bool:
    kwargs = json.loads(options_key)
    if resize:
        kwargs["img_size"] = side
    try:
        model = _probe_model(arch, in_channels, kwargs).eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, in_channels, side, side, device=device))
    except ConfigError:
        raise
    except Exception:  # any failure (shape mismatch, map shrunk to 0 px) means "not this size"
        return False
    return True


@lru_cache(maxsize=256)
def _accepts_img_size(arch: str, in_channels: int, options_key: str) -> bool:
    try:
        with torch.device("meta"):
            timm.create_model(arch, pretrained=False, num_classes=2, in_chans=in_channels,
                              img_size=SIDE_STEP, **json.loads(options_key))
    except TypeError:
        return False
    except Exception:  # accepted, but that size or the meta device failed: probed later
        return True
    return True


def _plan(cfg: ModelConfig, image_size: int, in_channels: int) -> tuple[int, bool]:
    """(side to build for, whether to pass ``img_size=side`` to timm)."""
    arch = cfg.name[len(PREFIX):]
    pretrained_cfg = get_pretrained_cfg(arch)
    default = pretrained_cfg.input_size[-1] if pretrained_cfg else 224
    fixed = bool(pretrained_cfg and pretrained_cfg.fixed_input_size)
    if "img_size" in cfg.options:
        return int(cfg.options["img_size"]), False
    key = _options_key(cfg.options)
    resize = fixed and _accepts_img_size(arch, in_channels, key)
    if fixed and not resize:
        return default, False
    top = max(image_size, default)
    larger = [s for s in range(SIDE_STEP, top + SIDE_STEP, SIDE_STEP) if s > image_size]
    for side in [image_size, *larger]:
        if _runs_at(arch, in_channels, key, side, resize):
            return side, resize
    raise ConfigError(f"{cfg.name} does not run on {image_size}-px images nor any larger size "
                      f"up to {larger[-1]} px; set data.image_size={default} (its default).")


def timm_requirements(cfg: ModelConfig, image_size: int, in_channels: int) -> tuple[int, int]:
    """(channels, side) a timm model needs: channels as given (timm adapts the stem)."""
    return in_channels, _plan(cfg, image_size, in_channels)[0]


def create_timm(cfg: ModelConfig, num_classes: int, in_channels: int,
                image_size: int) -> nn.Module:
    """``timm.create_model`` with ``model.options`` as extra keyword arguments.

    Fixed-size models that take ``img_size`` are built for ``image_size`` (a multiple of
    32 px, see :func:`timm_requirements`), so they train on small images directly.
    """
    kwargs = dict(cfg.options)
    side, resize = _plan(cfg, image_size, in_channels)
    if resize:
        kwargs["img_size"] = side
    return _create(cfg.name[len(PREFIX):], in_channels, num_classes, kwargs)


@dataclass(frozen=True)
class TimmEntry(ModelEntry):
    """The catalog entry shared by every ``timm/<name>``."""

    def requirements(self, cfg: ModelConfig, image_size: int,
                     in_channels: int) -> tuple[int, int]:
        return timm_requirements(cfg, image_size, in_channels)


TIMM = TimmEntry(create_timm, "timm",
                 "any timm architecture, built from scratch; model.options are passed to "
                 "timm.create_model (list: timm.list_models())", reads=frozenset({"options"}))
