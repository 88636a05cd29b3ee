"""Transfer learning on a built model: pretrained weights, truncation, a new head,
re-initialisation, freezing, per-part learning rates and gradual unfreezing.

:func:`apply_transfer` runs in :func:`~convbench.models.create_model`, in this order:
load ``model.pretrained``; keep the first ``truncate`` backbone units (the rest become
``Identity``, so kept layers keep their names and weights stay comparable with the
pretrained start); replace the classifier by ``head``; re-initialise ``reinit``; then work
out, per parameter, its LR multiplier and the epoch it starts training. The model gets a
``param_groups()`` method (one optimiser group per unit, frozen ones at LR 0, which the
trainer uses) and ``on_epoch_start(epoch, optimizer)`` (gradual unfreezing). Frozen BatchNorm
layers stay in eval mode (``freeze_bn``), so their running statistics do not drift either.

>>> import torch
>>> from convbench.config import ModelConfig
>>> from convbench.models import create_model
>>> cfg = ModelConfig(name="resnet20", transfer={"freeze": 2, "lr_scale": {"head": 10}})
>>> net = create_model(cfg, 10, in_channels=3, image_size=32)
>>> [(g["name"], g["lr_scale"]) for g in net.param_groups()]
[('stem', 0.0), ('layer1', 0.0), ('layer2', 1.0), ('layer3', 1.0), ('head', 10.0)]
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

import torch
from torch import nn

from ..config import HeadConfig, ModelConfig, TransferConfig
from ..errors import ConfigError
from .anatomy import Unit, backbone_units, classifier_name, select, unit_of
from .layers import INITS, make_activation
from .pretrained import load_pretrained

DEFAULT = TransferConfig()


class _StopForward(Exception):
    """Raised by a hook once the classifier's input is seen: the rest of the pass is moot."""


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def classifier_input(model: nn.Module, in_channels: int, side: int) -> torch.Size:
    """Shape of what reaches the classifier for one ``in_channels``×``side``² image."""
    seen: dict[str, torch.Size] = {}

    def hook(_module, args):
        seen["shape"] = args[0].shape
        raise _StopForward

    device = next(model.parameters()).device
    handle = model.get_submodule(classifier_name(model)).register_forward_pre_hook(hook)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, side, side, device=device))
    except _StopForward:
        pass
    except Exception as err:  # the kept units do not chain: a model with a custom forward
        raise ConfigError(f"{type(model).__name__} does not run once truncated ({err}); "
                          "model.transfer.truncate works for sequential backbones (VGG, "
                          "ResNet, EfficientNet, the blocks models).") from None
    finally:
        handle.remove()
        model.train(was_training)
    if "shape" not in seen:
        raise ConfigError(f"{type(model).__name__}: the classifier is never called in forward.")
    return seen["shape"]


def make_head(width: int, num_classes: int, cfg: HeadConfig) -> nn.Sequential:
    """Flatten → ``cfg.units`` × (linear → [BN] → activation → [dropout]) → linear.

    >>> head = make_head(8, 3, HeadConfig(units=[4], batch_norm=True, dropout=0.5))
    >>> [type(m).__name__ for m in head]
    ['Flatten', 'Linear', 'BatchNorm1d', 'ReLU', 'Dropout', 'Linear']
    """
    if any(units < 1 for units in cfg.units):
        raise ConfigError(f"model.transfer.head.units = {cfg.units}: every hidden layer needs at "
                          "least 1 unit. Use positive widths, or [] for a single linear layer.")
    layers: list[nn.Module] = [nn.Flatten()]
    for units in cfg.units:
        layers.append(nn.Linear(width, units))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(units))
        layers.append(make_activation(cfg.activation))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = units
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def truncate(model: nn.Module, keep: int, units: list[Unit] | None = None) -> nn.Module:
    """Replace every backbone unit after the first ``keep`` by ``Identity`` (in place).

    The classifier must be replaced afterwards (:func:`replace_head`): its input changed.
    """
    units = backbone_units(model) if units is None else units
    if keep >= len(units):
        raise ConfigError(f"model.transfer.truncate = {keep} keeps everything: the backbone has "
                          f"{len(units)} units. Use a smaller number (see `convbench analyze "
                          "layers`).")
    for unit in units[keep:]:
        for name in unit.modules:
            _set_module(model, name, nn.Identity())
    return model


def replace_head(model: nn.Module, num_classes: int, in_channels: int, side: int,
                 cfg: HeadConfig) -> nn.Module:
    """Put a new head (:func:`make_head`) where the classifier was, sized by a probe pass."""
    shape = classifier_input(model, in_channels, side)
    head = make_head(math.prod(shape[1:]), num_classes, cfg)
    device = next(model.parameters()).device
    _set_module(model, classifier_name(model), head.to(device))
    return model


def _torch7_uniform(module: nn.Module) -> None:
    # Torch7's reset(), as the clip-art study used: U(±1/sqrt(fan_in)) for weight and bias.
    fan_in = module.weight[0].numel()
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(module.weight, -bound, bound)
    if module.bias is not None:
        nn.init.uniform_(module.bias, -bound, bound)


def reinit(model: nn.Module, names: set[str], method: str) -> list[str]:
    """Re-initialise the layers owning any of the parameter ``names``; returns their names.

    ``uniform`` is Torch7's default (the clip-art study); ``glorot_*``/``kaiming_*`` draw
    the weights and zero the biases. Normalisation layers go back to ones/zeros with fresh
    running statistics.
    """
    done = []
    with torch.no_grad():
        for qual, module in model.named_modules():
            own = [f"{qual}.{n}" if qual else n for n, _ in module.named_parameters(recurse=False)]
            if not own or not names.intersection(own):
                continue
            if isinstance(module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
                module.reset_parameters()
            elif hasattr(module, "weight") and module.weight is not None \
                    and module.weight.ndim >= 2:
                if method == "uniform":
                    _torch7_uniform(module)
                else:
                    INITS[method](module.weight)
                    if getattr(module, "bias", None) is not None:
                        nn.init.zeros_(module.bias)
            elif hasattr(module, "reset_parameters"):
                module.reset_parameters()
            done.append(qual)
    return done


def _frozen(model: nn.Module, freeze: int | str | list[str], units: list[Unit]) -> set[str]:
    """The parameter names ``model.transfer.freeze`` picks."""
    if isinstance(freeze, int):
        # A count outside the backbone is a typo, refused like truncate's (the ":N" slice
        # below would silently clip it to everything or nothing).
        if not 0 <= freeze <= len(units):
            raise ConfigError(f"model.transfer.freeze = {freeze} is not a number of backbone "
                              f"units: the backbone has {len(units)}. Use 0 to {len(units)} "
                              "(see `convbench analyze layers`).")
        return select(model, f":{freeze}", units) if freeze > 0 else set()
    if isinstance(freeze, str):
        return set() if freeze == "none" else select(model, freeze, units)
    return set().union(*(select(model, s, units) for s in freeze)) if freeze else set()


def plan_groups(model: nn.Module, t: TransferConfig) -> list[dict]:
    """Per-unit optimiser groups: ``name``, ``params``, ``base_scale`` (LR multiplier when
    training), ``trainable_from`` (first epoch it trains; None: never) and ``lr_scale``."""
    units = backbone_units(model)
    frozen = _frozen(model, t.freeze, units)
    if t.unfreeze_after and not frozen:
        frozen = select(model, "backbone", units)  # fastai's fine_tune: the head trains first
    n = len(units)
    scale: dict[str, float] = {}
    for name, _ in model.named_parameters():
        i = unit_of(units, name)
        if t.discriminative:
            low, high = t.discriminative
            step = (n if i is None else i) / n if n else 1.0
            scale[name] = low * (high / low) ** step
        else:
            scale[name] = 1.0
    for selector, value in t.lr_scale.items():
        for name in select(model, selector, units):
            scale[name] = value
    start = (t.unfreeze_after + 1) if t.unfreeze_after else None
    groups: OrderedDict[tuple, dict] = OrderedDict()
    for name, param in model.named_parameters():
        i = unit_of(units, name)
        label = "head" if i is None else units[i].name
        begins = start if name in frozen else 1
        if scale[name] == 0:
            begins = None  # an LR of 0 is a freeze: no gradients, BatchNorm kept in eval
        key = (label, scale[name], begins)
        group = groups.setdefault(key, {"name": label, "params": [], "base_scale": scale[name],
                                        "trainable_from": begins})
        group["params"].append(param)
    return list(groups.values())


def set_epoch(groups: list[dict], epoch: int) -> None:
    """Freeze or unfreeze each group for ``epoch`` (1-based): requires_grad and ``lr_scale``."""
    for group in groups:
        if "trainable_from" not in group:
            continue
        begins = group["trainable_from"]
        on = begins is not None and epoch >= begins
        for p in group["params"]:
            p.requires_grad_(on)
        group["lr_scale"] = group["base_scale"] if on else 0.0


def _keep_frozen_bn_in_eval(module: nn.Module, _args) -> None:
    # A hook, not a train() override: the model keeps its class and its state_dict names.
    params = list(module.parameters(recurse=False))
    if module.training and params and not any(p.requires_grad for p in params):
        module.train(False)


def is_default(cfg: ModelConfig) -> bool:
    """Whether ``cfg`` asks for nothing from this module (no weights, default transfer)."""
    return cfg.pretrained is False and cfg.transfer == DEFAULT


def apply_transfer(model: nn.Module, cfg: ModelConfig, num_classes: int, in_channels: int,
                   image_size: int) -> nn.Module:
    """Apply ``cfg.pretrained`` and ``cfg.transfer`` to a freshly built ``model`` (in place)."""
    if is_default(cfg):
        return model
    t = cfg.transfer
    load_pretrained(model, cfg)
    if any(p.is_meta for p in model.parameters()):
        return model  # a parameter count on the meta device: structure only
    if t.truncate:
        truncate(model, t.truncate)
    if t.truncate or t.head is not None:
        replace_head(model, num_classes, in_channels, image_size, t.head or HeadConfig())
    if t.reinit:
        units = backbone_units(model)
        reinit(model, set().union(*(select(model, s, units) for s in t.reinit)), t.reinit_init)
    groups = plan_groups(model, t)
    set_epoch(groups, 1)

    def param_groups() -> list[dict]:
        return groups

    def on_epoch_start(epoch: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        set_epoch(optimizer.param_groups if optimizer is not None else groups, epoch)

    model.param_groups = param_groups
    model.on_epoch_start = on_epoch_start
    if t.freeze_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.register_forward_pre_hook(partial(_keep_frozen_bn_in_eval))
    return model
