"""ResNets: CIFAR-style ResNet-20/32/44/56 (He et al. 2016, §4.2) and torchvision's 18/34/50.

>>> import torch
>>> from convbench.config import ModelConfig
>>> net = cifar_resnet(ModelConfig(name="resnet20"), 10, 3, 32, depth=20)
>>> net(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv_resnet

from ..config import ModelConfig
from .catalog import register
from .layers import LARGE_INPUT


class PadShortcut(nn.Module):
    """Option-A shortcut of the paper: subsample by 2 and zero-pad the new channels."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with a parameter-free shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        downsample = stride != 1 or in_ch != out_ch
        self.shortcut = PadShortcut(out_ch - in_ch) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """3×3 stem with 16 filters, three stages of ``n`` blocks (16/32/64), global pool, fc."""

    def __init__(self, n: int, num_classes: int, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        stages, ch = [], 16
        for i, width in enumerate((16, 32, 64)):
            blocks = [BasicBlock(ch if j == 0 else width, width, 2 if (i and j == 0) else 1)
                      for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            ch = width
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def cifar_resnet(cfg: ModelConfig, num_classes: int, in_channels: int, image_size: int, *,
                 depth: int) -> nn.Module:
    """ResNet-``depth`` for small images; depth = 6n + 2 (20, 32, 44, 56)."""
    return CifarResNet((depth - 2) // 6, num_classes, in_channels)


def torchvision_resnet(cfg: ModelConfig, num_classes: int, in_channels: int, image_size: int,
                       *, depth: int) -> nn.Module:
    """torchvision's ResNet-``depth``; below 112 px the stem is a 3×3 stride-1 conv, no max-pool.

    The ImageNet stem would shrink a 32-px image to 8 px before the first block.
    """
    net = getattr(tv_resnet, f"resnet{depth}")(weights=None, num_classes=num_classes)
    if image_size < LARGE_INPUT:
        stem = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        stem = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    else:
        return net
    # torchvision's own initialisation of conv1, for the replaced layer.
    nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
    net.conv1 = stem
    return net


def _register_all() -> None:
    for depth in (20, 32, 44, 56):
        register(f"resnet{depth}", "resnet", reads=set(),
                 description=f"CIFAR ResNet-{depth} (He et al. 2016): 3 stages 16/32/64, "
                 f"{(depth - 2) // 6} blocks each, option-A shortcuts")(
            partial(cifar_resnet, depth=depth))
    for depth in (18, 34, 50):
        register(f"resnet{depth}", "resnet", reads=set(),
                 description=f"torchvision ResNet-{depth}; 3×3 stride-1 stem without "
                 "max-pool below 112 px")(partial(torchvision_resnet, depth=depth))


_register_all()
