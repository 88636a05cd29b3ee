"""VGG-11/13/16/19 (with and without batch norm) with torchvision's configurations.

Below 112 px the head is sized for small inputs (global pool, 512-unit dense layers) and
pools that would shrink the map below 1 px are skipped; at 112 px and above the module tree
equals torchvision's, so ImageNet weights map onto it by name.

>>> import torch
>>> from convbench.config import ModelConfig
>>> net = vgg(ModelConfig(name="vgg11"), 10, 1, 28, depth="vgg11", batch_norm=False)
>>> net(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..config import ModelConfig
from .catalog import register
from .layers import LARGE_INPUT

# torchvision's configurations "A", "B", "D", "E": conv widths, "M" = 2×2 max-pool.
CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """torchvision's VGG layout: ``features``, ``avgpool``, ``classifier``."""

    def __init__(self, features: nn.Sequential, pool_side: int, hidden: int,
                 num_classes: int, dropout: float):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(pool_side)
        self.classifier = nn.Sequential(
            nn.Linear(512 * pool_side * pool_side, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        _torchvision_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _torchvision_init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def make_features(widths: list[int | str], in_channels: int, image_size: int,
                  batch_norm: bool) -> nn.Sequential:
    """Convs and pools of one VGG configuration; a pool that would leave < 1 px is an Identity.

    Identity (rather than dropping the layer) keeps torchvision's layer indices.

    >>> make_features([8, "M", 8, "M"], 1, 2, False)[-1]
    Identity()
    """
    layers: list[nn.Module] = []
    side, ch = image_size, in_channels
    for w in widths:
        if w == "M":
            layers.append(nn.MaxPool2d(2, 2) if side >= 2 else nn.Identity())
            side = max(side // 2, 1)
            continue
        layers.append(nn.Conv2d(ch, int(w), 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(w)))
        layers.append(nn.ReLU(inplace=True))
        ch = int(w)
    return nn.Sequential(*layers)


def vgg(cfg: ModelConfig, num_classes: int, in_channels: int, image_size: int, *,
        depth: str, batch_norm: bool) -> nn.Module:
    """One VGG; ``depth`` picks the configuration, dropout is 0.5 unless model.dropout is set."""
    features = make_features(CONFIGS[depth], in_channels, image_size, batch_norm)
    large = image_size >= LARGE_INPUT
    return VGG(features, 7 if large else 1, 4096 if large else 512, num_classes,
               cfg.dropout or 0.5)


def _register_all() -> None:
    for depth in CONFIGS:
        for bn in (False, True):
            register(f"{depth}_bn" if bn else depth, "vgg", reads={"dropout"},
                     description=f"{depth.upper()}{' with batch norm' if bn else ''} "
                     "(torchvision config); small-input head below 112 px")(
                partial(vgg, depth=depth, batch_norm=bn))


_register_all()
