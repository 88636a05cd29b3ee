"""Detection backbones: a body giving four feature maps (strides 4, 8, 16, 32) + an FPN.

Families: ResNet 18/31/34/50/101 with three stems (``standard`` 7×7; ``deep`` = three 3×3
convs, the study's "50b"; ``parallel`` = both summed before the pool, "50c"), VoVNet
19-lite/19/39/57/99, MobileNetV3 large/small, and any timm model as ``timm/<name>``.

>>> fpn = build_backbone("resnet18", trainable_layers=3)
>>> sorted(fpn(torch.zeros(1, 3, 64, 64)))
['0', '1', '2', '3', 'pool']
>>> BACKBONES.get("resnet50b") is BACKBONES.get("resnet50-deep")
True
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..errors import ConfigError, WeightsError, unknown_name
from ..registry import Registry
from .vovnet import VOVNET_SPECS, VoVNet, conv_bn_relu

NormLayer = Callable[[int], nn.Module]
NORMS = ("bn", "frozen", "gn")


class Body(nn.Module):
    """Wraps a network whose forward gives four feature maps; knows its freezable units.

    ``units`` are five groups of child-module names of ``net``: the stem, then the stages
    giving stride 4, 8, 16 and 32. ``freeze(k)`` keeps the last ``k`` units trainable.
    """

    def __init__(self, net: nn.Module, channels: list[int], units: list[list[str]]):
        super().__init__()
        self.net = net
        self.channels = list(channels)
        self.units = units
        self._frozen: list[str] = []

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.net(x)
        if isinstance(feats, dict):
            feats = list(feats.values())
        return OrderedDict((str(i), f) for i, f in enumerate(feats[-4:]))

    def freeze(self, trainable_layers: int) -> None:
        """Freeze all but the last ``trainable_layers`` of the five units (0 = all frozen)."""
        if not 0 <= trainable_layers <= 5:
            raise ConfigError(f"trainable_layers must be 0…5 (stem + 4 stages), got "
                              f"{trainable_layers}.")
        self._frozen = [n for unit in self.units[: 5 - trainable_layers] for n in unit]
        for name in self._frozen:
            self.net.get_submodule(name).requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> Body:
        # Frozen units keep their normalisation statistics fixed, too.
        super().train(mode)
        for name in self._frozen:
            self.net.get_submodule(name).eval()
        return self


class BackboneFPN(nn.Module):
    """A :class:`Body` followed by torchvision's FPN (+ max-pool level), as Mask R-CNN wants."""

    def __init__(self, body: Body, out_channels: int = 256):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.channels, out_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(self.body(x))


BACKBONES: Registry[Callable[[NormLayer], Body]] = Registry(
    "backbone", listing="convbench detect backbones")

RESNET_LAYOUTS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    31: (Bottleneck, [2, 3, 2, 3]),  # the study's ResNet-31: bottlenecks, 1 + 3·10 convs
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
}
STEMS = ("standard", "deep", "parallel")


class ParallelStem(nn.Module):
    """The 7×7/2 conv and the three-3×3 stem side by side, summed (the study's "50c")."""

    def __init__(self, norm: NormLayer):
        super().__init__()
        self.wide = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.deep = _deep_stem(norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wide(x) + self.deep(x)


def _deep_stem(norm: NormLayer) -> nn.Sequential:
    # The last conv has no norm/ReLU: the ResNet's own bn1 + relu follow it.
    return nn.Sequential(conv_bn_relu(3, 64, norm, stride=2), conv_bn_relu(64, 64, norm),
                         nn.Conv2d(64, 64, 3, 1, 1, bias=False))


def resnet_body(depth: int, stem: str = "standard", norm: NormLayer = nn.BatchNorm2d) -> Body:
    """A ResNet body of ``depth`` with the given stem; weights keep torchvision's names.

    >>> resnet_body(31).channels
    [256, 512, 1024, 2048]
    """
    block, layers = RESNET_LAYOUTS[depth]
    net = ResNet(block, layers, norm_layer=norm)
    if stem == "deep":
        net.conv1 = _deep_stem(norm)
    elif stem == "parallel":
        net.conv1 = ParallelStem(norm)
    width = 512 * (4 if block is Bottleneck else 1)
    getter = IntermediateLayerGetter(net, {f"layer{i}": str(i - 1) for i in range(1, 5)})
    return Body(getter, [width // 8, width // 4, width // 2, width],
                [["conv1", "bn1", "relu", "maxpool"], ["layer1"], ["layer2"], ["layer3"],
                 ["layer4"]])


def _register_resnets() -> None:
    letters = {"standard": "", "deep": "b", "parallel": "c"}
    for depth in RESNET_LAYOUTS:
        for stem in STEMS:
            names = [f"resnet{depth}{letters[stem]}"]
            if stem != "standard":
                names.append(f"resnet{depth}-{stem}")

            def build(norm: NormLayer, depth: int = depth, stem: str = stem) -> Body:
                return resnet_body(depth, stem, norm)

            BACKBONES.register(*names)(build)


def vovnet_body(name: str, norm: NormLayer = nn.BatchNorm2d) -> Body:
    """A VoVNet body from :data:`VOVNET_SPECS` (``vovnet19-lite`` … ``vovnet99``)."""
    net = VoVNet(**VOVNET_SPECS[name], norm=norm)
    return Body(net, net.out_channels, [["stem"], ["stage2"], ["stage3"], ["stage4"],
                                        ["stage5"]])


def _register_vovnets() -> None:
    for name in VOVNET_SPECS:
        def build(norm: NormLayer, name: str = name) -> Body:
            return vovnet_body(name, norm)

        BACKBONES.register(name)(build)


def sequential_body(seq: nn.Sequential) -> Body:
    """Split a plain Sequential (MobileNetV3 ``features``) at its stride 4/8/16/32 ends."""
    x = torch.zeros(1, 3, 64, 64)
    strides, chans = [], []
    with torch.no_grad():
        for layer in seq:
            x = layer(x)
            strides.append(64 // x.shape[-1])
            chans.append(x.shape[1])
    names = [str(i) for i in range(len(seq))]
    ends = [max(i for i, s in enumerate(strides) if s == target) for target in (4, 8, 16, 32)]
    starts = [0] + [e + 1 for e in ends[:-1]]
    first_s4 = min(i for i, s in enumerate(strides) if s == 4)
    units = [names[:first_s4], names[first_s4: ends[0] + 1]]
    units += [names[s: e + 1] for s, e in zip(starts[1:], ends[1:], strict=True)]
    getter = IntermediateLayerGetter(seq, {names[e]: str(k) for k, e in enumerate(ends)})
    return Body(getter, [chans[e] for e in ends], units)


@BACKBONES.register("mobilenet_v3_large")
def _mobilenet_large(norm: NormLayer) -> Body:
    return sequential_body(mobilenet_v3_large(norm_layer=norm).features)


@BACKBONES.register("mobilenet_v3_small")
def _mobilenet_small(norm: NormLayer) -> Body:
    return sequential_body(mobilenet_v3_small(norm_layer=norm).features)


_register_resnets()
_register_vovnets()


def timm_body(model_name: str) -> Body:
    """Any timm model with ``features_only=True``; its last four feature levels are used.

    >>> timm_body("resnet18").channels
    [64, 128, 256, 512]
    """
    import timm

    if not timm.is_model(model_name):
        raise unknown_name("timm model", model_name, timm.list_models(),
                           "python -c 'import timm; print(timm.list_models())'")
    try:
        probe = timm.create_model(model_name, pretrained=False, features_only=True)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ConfigError(f"timm model {model_name!r} cannot give feature maps "
                          f"(features_only): {err}") from None
    n = len(probe.feature_info)
    if n < 4:
        raise ConfigError(f"timm model {model_name!r} has {n} feature levels; the FPN needs 4.")
    net = timm.create_model(model_name, pretrained=False, features_only=True,
                            out_indices=tuple(range(n - 4, n)))
    names = probe.feature_info.module_name()
    ends = [_module_path(net, m) for m in ([names[n - 5]] if n > 4 else []) + names[n - 4:]]
    return Body(net, list(net.feature_info.channels()), _units(net, ends, has_stem=n > 4))


def _module_path(net: nn.Module, name: str) -> str:
    # timm's FeatureListNet flattens "layer.1" into a child called "layer_1".
    try:
        net.get_submodule(name)
        return name
    except AttributeError:
        return name.replace(".", "_")


def _units(net: nn.Module, ends: list[str], has_stem: bool) -> list[list[str]]:
    """Group module paths, in registration order, into units closed by the ``ends`` paths."""
    units: list[list[str]] = [[] for _ in range(5)]
    unit = 0 if has_stem else 1

    def walk(module: nn.Module, prefix: str) -> None:
        nonlocal unit
        for name, child in module.named_children():
            path = prefix + name
            if unit > 4:
                return
            if any(e.startswith(path + ".") for e in ends):
                walk(child, path + ".")
                continue
            units[unit].append(path)
            if path in ends:
                unit += 1

    walk(net, "")
    return units


def norm_layer(norm: str) -> NormLayer:
    """The normalisation used while building: ``gn`` → GroupNorm, else BatchNorm.

    ``frozen`` builds with BatchNorm and converts after loading weights (see
    :func:`freeze_batchnorm`), so pretrained statistics are kept.
    """
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}.")
    if norm == "gn":
        return lambda c: nn.GroupNorm(math.gcd(32, c), c)
    return nn.BatchNorm2d


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a FrozenBatchNorm2d with the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def check_backbone(name: str) -> None:
    """Raise :class:`UnknownNameError` (with close names) unless ``name`` can be built."""
    if name.startswith("timm/"):
        import timm

        if not timm.is_model(name.removeprefix("timm/")):
            raise unknown_name("timm model", name.removeprefix("timm/"), timm.list_models(),
                               "python -c 'import timm; print(timm.list_models())'")
        return
    BACKBONES.get(name)


def build_body(name: str, norm: str = "bn") -> Body:
    """The named body (random init). ``timm/<name>`` builds a timm model."""
    if name.startswith("timm/"):
        if norm == "gn":
            raise ConfigError("norm 'gn' is not available for timm backbones; use bn or frozen.")
        return timm_body(name.removeprefix("timm/"))
    return BACKBONES.get(name)(norm_layer(norm))


def build_backbone(name: str, trainable_layers: int = 5,
                   pretrained: bool | str | Path | None = None, norm: str = "bn",
                   fpn_channels: int = 256) -> BackboneFPN:
    """Body + FPN, optionally with pretrained body weights (``True``: the published ImageNet
    weights; or a file) and frozen early units.

    >>> build_backbone("vovnet19-lite", trainable_layers=0).body.net.stem[0][0].weight.requires_grad
    False
    """
    body = build_body(name, norm)
    if pretrained is True:
        load_weights(body.net, published_weights(name))
    elif pretrained:
        load_weights(body.net, pretrained)
    if norm == "frozen":
        freeze_batchnorm(body.net)
    body.freeze(trainable_layers)
    return BackboneFPN(body, fpn_channels)


# torchvision's ImageNet weights for the backbones whose module tree equals torchvision's
# (ResNets with the standard stem, MobileNetV3); timm/<name> uses timm's published weights.
PUBLISHED = {
    **{f"resnet{d}": f"ResNet{d}_Weights.IMAGENET1K_V1" for d in (18, 34, 50, 101)},
    "mobilenet_v3_large": "MobileNet_V3_Large_Weights.IMAGENET1K_V1",
    "mobilenet_v3_small": "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
}


def published_weights(name: str) -> dict[str, torch.Tensor]:
    """ImageNet weights for backbone ``name``: from the torch hub or Hugging Face cache, or
    downloaded when a network is reachable; a clear error otherwise.

    >>> published_weights("vovnet39")
    Traceback (most recent call last):
    ...
    convbench.errors.WeightsError: vovnet39 has no published weights here: \
model.pretrained=true works for resnet18, resnet34, resnet50, resnet101, mobilenet_v3_large, \
mobilenet_v3_small and timm/<name>. Set it to a weights file path instead.
    """
    from ..models.pretrained import timm_weights, url_weights

    if name.startswith("timm/"):
        import timm

        arch = name.removeprefix("timm/")
        return timm_weights(arch, timm.create_model(arch, pretrained=False))
    if name in PUBLISHED:
        from torchvision.models import get_weight

        return url_weights(get_weight(PUBLISHED[name]).url, f"torchvision weights for {name}")
    raise WeightsError(f"{name} has no published weights here: model.pretrained=true works "
                       f"for {', '.join(PUBLISHED)} and timm/<name>. Set it to a weights file "
                       "path instead.")


def load_weights(net: nn.Module, source: str | Path | dict[str, torch.Tensor],
                 strict: bool = True) -> dict[str, int]:
    """Load matching tensors (a weights file, or a name → tensor dict) into ``net``; return
    counts of loaded/ignored/missing keys.

    Key prefixes (``module.``, ``backbone.body.``, ``features.``…) are found automatically;
    classifier heads and other extra keys are ignored. Raises :class:`WeightsError` when
    shapes clash or, with ``strict``, when any tensor of ``net`` is missing (BatchNorm's
    ``num_batches_tracked`` counters excepted); without it, when half or more are missing.
    """
    from ..models.pretrained import read_weights

    path = "weights" if isinstance(source, dict) else source
    source = source if isinstance(source, dict) else read_weights(source)
    target = net.state_dict()
    prefix = _best_prefix(list(source), set(target))
    matched = {k[len(prefix):]: v for k, v in source.items()
               if k.startswith(prefix) and k[len(prefix):] in target}
    bad = [k for k, v in matched.items() if v.shape != target[k].shape]
    if bad:
        k = bad[0]
        raise WeightsError(f"{path}: {len(bad)} tensors do not fit, e.g. {k!r} is "
                           f"{tuple(matched[k].shape)}, expected {tuple(target[k].shape)}. "
                           "Are these weights for this backbone?")
    needed = [k for k in target if not k.endswith("num_batches_tracked")]
    found = sum(1 for k in needed if k in matched)
    if found < len(needed) if strict else found < 0.5 * len(needed):
        missing = next(k for k in needed if k not in matched)
        raise WeightsError(f"{path}: only {found} of {len(needed)} backbone tensors found "
                           f"(e.g. {missing!r} is missing). Are these weights for this "
                           "backbone?")
    net.load_state_dict(matched, strict=False)
    return {"loaded": len(matched), "ignored": len(source) - len(matched),
            "missing": len(target) - len(matched)}


def _best_prefix(source_keys: list[str], target: set[str]) -> str:
    counts: dict[str, int] = {}
    for key in source_keys:
        if key in target:
            counts[""] = counts.get("", 0) + 1
        for i, ch in enumerate(key):
            if ch == "." and key[i + 1:] in target:
                counts[key[: i + 1]] = counts.get(key[: i + 1], 0) + 1
    return max(counts, key=lambda p: (counts[p], -len(p))) if counts else ""


def list_backbones() -> list[dict[str, str]]:
    """Registered backbone names with their family (timm models are not listed)."""
    rows = []
    for name in BACKBONES.names():
        family = ("resnet" if name.startswith("resnet") else
                  "vovnet" if name.startswith("vovnet") else "mobilenet")
        rows.append({"name": name, "family": family})
    return rows
