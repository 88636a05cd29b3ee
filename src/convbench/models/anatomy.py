"""The parts of a network that transfer learning talks about: backbone units and the head.

A *unit* is a stage of the backbone in forward order: the stem, then each block of a
``blocks``/``stages``/``layers``/``features`` container (a flat container of single layers,
as VGG's ``features``, is cut after every pooling layer, so VGG16 has 5 units), then any
layers after the containers (EfficientNet's ``conv_head``). The *head* is everything with
parameters that is not in a unit: the classifier. Selectors (see :func:`select`) name sets of
parameters by these parts, so ``freeze: 3`` means the same thing for VGG, ResNet and timm.

>>> import torch
>>> from convbench.config import ModelConfig
>>> from convbench.models import create_model
>>> net = create_model(ModelConfig(name="resnet20"), 10, in_channels=3, image_size=32)
>>> [u.name for u in backbone_units(net)]
['stem', 'layer1', 'layer2', 'layer3']
>>> classifier_name(net)
'fc'
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError

CONTAINERS = ("blocks", "stages", "layers", "features")
# In a flat container a unit ends after one of these (VGG's max-pools; convbench's VGG puts an
# Identity where a pool would shrink a tiny map below 1 px).
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.Identity)
KEYWORDS = ("all", "backbone", "head")
SLICE = re.compile(r"^(-?\d+)?(:)?(-?\d+)?$")


@dataclass
class Unit:
    """One backbone stage: its display name and the qualified names of its modules."""

    name: str
    modules: list[str]

    def owns(self, param_name: str) -> bool:
        return any(param_name.startswith(m + ".") for m in self.modules)


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) for m in module.modules())


def classifier_name(model: nn.Module) -> str:
    """Qualified name of the classifier module (what a new head replaces).

    timm models say it in their ``pretrained_cfg``; otherwise it is the top-level child that
    holds the last linear layer (VGG's whole ``classifier`` MLP, ResNet's ``fc``).

    >>> classifier_name(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3)))
    '2'
    """
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("classifier") if isinstance(cfg, dict) else None
    if isinstance(name, str):
        try:
            model.get_submodule(name)
            return name
        except AttributeError:
            pass
    last = None
    for qual, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = qual
    if last is None:
        raise ConfigError(f"{type(model).__name__} has no linear classifier layer, so its head "
                          "cannot be found; transfer options need a model with a dense head.")
    return last.split(".")[0]


def _flat_groups(container: str, children: list[tuple[str, nn.Module]]) -> list[Unit]:
    units, current = [], []
    for name, child in children:
        current.append(name)
        if isinstance(child, POOLS):
            units.append(current)
            current = []
    if current:
        units.append(current)
    return [Unit(f"{container}.{g[0]}" if len(g) == 1 else f"{container}.{g[0]}-{g[-1]}",
                 [f"{container}.{n}" for n in g]) for g in units]


def backbone_units(model: nn.Module) -> list[Unit]:
    """The backbone's units in forward order (the classifier and what follows are excluded).

    >>> net = nn.Sequential()
    >>> net.add_module("features", nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
    ...                                          nn.Conv2d(4, 4, 3), nn.ReLU(), nn.MaxPool2d(2)))
    >>> net.add_module("classifier", nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    >>> [(u.name, u.modules) for u in backbone_units(net)][0]
    ('features.0-2', ['features.0', 'features.1', 'features.2'])
    """
    head_top = classifier_name(model).split(".")[0]
    units: list[Unit] = []
    loose: list[str] = []  # consecutive top-level layers outside containers
    seen_container = False

    def flush() -> None:
        if loose:
            units.append(Unit("stem" if not seen_container else loose[0], list(loose)))
            loose.clear()

    children = list(model.named_children())
    # Param-less layers after the last conv-bearing child (global pooling, flatten) belong to
    # neither part: they stay in place whatever happens to the units around them.
    last_conv = max((i for i, (_, c) in enumerate(children) if _has_conv(c)), default=-1)
    for i, (name, child) in enumerate(children):
        if name == head_top:
            break
        sequence = isinstance(child, nn.Sequential | nn.ModuleList) and len(child) > 0
        if sequence and name in CONTAINERS:
            flush()
            seen_container = True
            grand = list(child.named_children())
            if any(len(list(g.children())) for _, g in grand):
                units += [Unit(f"{name}.{g}", [f"{name}.{g}"]) for g, _ in grand]
            else:
                units += _flat_groups(name, grand)
        elif sequence and _has_params(child):  # a stage of its own, as ResNet's layer1
            flush()
            seen_container = True
            units.append(Unit(name, [name]))
        elif _has_params(child) or (i < last_conv and (loose or not seen_container)):
            loose.append(name)
    flush()
    return [u for u in units if any(_has_params(model.get_submodule(m)) for m in u.modules)]


def unit_of(units: list[Unit], param_name: str) -> int | None:
    """Index of the unit owning ``param_name``, or None for head parameters."""
    return next((i for i, u in enumerate(units) if u.owns(param_name)), None)


def _slice(text: str, n: int) -> range | None:
    match = SLICE.match(text.strip())
    if not match or text.strip() in ("", ":"):
        return None
    start, colon, stop = match.groups()
    if colon is None:
        i = int(start)
        i = i + n if i < 0 else i
        if not 0 <= i < n:
            raise ConfigError(f"Unit {text} does not exist: the backbone has {n} units "
                              f"(0…{n - 1}). `convbench analyze layers` lists them.")
        return range(i, i + 1)
    return range(n)[slice(int(start) if start else None, int(stop) if stop else None)]


def select(model: nn.Module, selector: str | int, units: list[Unit] | None = None) -> set[str]:
    """Names of the parameters a selector picks.

    ``all``, ``backbone``, ``head``; a backbone unit index or slice (``2``, ``0:3``, ``-2:``);
    a unit name (``layer2``); or a glob over parameter/module names (``features.1*``,
    ``*.bn1.*``; a module name selects all its parameters).

    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3))
    >>> sorted(select(net, "head"))
    ['2.bias', '2.weight']
    """
    units = backbone_units(model) if units is None else units
    names = [n for n, _ in model.named_parameters()]
    text = str(selector).strip()
    owner = {n: unit_of(units, n) for n in names}
    if text == "all":
        return set(names)
    if text == "backbone":
        return {n for n in names if owner[n] is not None}
    if text == "head":
        return {n for n in names if owner[n] is None}
    picked = _slice(text, len(units))
    if picked is not None:
        return {n for n in names if owner[n] in picked}
    by_name = [i for i, u in enumerate(units) if u.name == text]
    if by_name:
        return {n for n in names if owner[n] == by_name[0]}
    chosen = {n for n in names if fnmatch.fnmatchcase(n, text) or n.startswith(text + ".")}
    if not chosen:
        listing = ", ".join(u.name for u in units)
        raise ConfigError(f"Selector {text!r} matches no parameter of this model. Use all, "
                          f"backbone, head, a unit index/slice or name ({listing}), or a "
                          "parameter-name glob; `convbench analyze layers` lists them.")
    return chosen


def describe_units(model: nn.Module) -> list[dict]:
    """One row per unit and one for the head: index, name, modules, parameter count.

    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3))
    >>> [r["name"] for r in describe_units(net)]
    ['stem', 'head']
    """
    units = backbone_units(model)
    counts = [0] * (len(units) + 1)
    for name, p in model.named_parameters():
        i = unit_of(units, name)
        counts[len(units) if i is None else i] += p.numel()
    rows = [{"index": i, "name": u.name, "modules": u.modules, "params": counts[i]}
            for i, u in enumerate(units)]
    rows.append({"index": None, "name": "head", "modules": [classifier_name(model)],
                 "params": counts[-1]})
    return rows
