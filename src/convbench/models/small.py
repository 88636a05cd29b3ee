"""Hand-designed small CNNs of study 002/003: ``custom-cnn`` and a CIFAR-sized ``alexnet``.

>>> import torch
>>> from convbench.config import ModelConfig
>>> custom_cnn(ModelConfig(name="custom-cnn"), 10, 1, 28)(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from functools import partial

from torch import nn

from ..config import ModelConfig
from .blocks import FeaturesClassifier
from .catalog import register
from .layers import LARGE_INPUT, init_weights, make_activation


def _conv_bn(in_ch: int, out_ch: int, cfg: ModelConfig) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch),
            make_activation(cfg.activation)]


@register("custom-cnn", "small", reads={"activation", "init", "dropout"},
          description="study-003 custom CNN: 4 conv (32/64/96/128, BN) + 2×2 adaptive max-pool + "
          "2 dense (192, classes) with dropout (0.2 unless model.dropout is set); ~0.29 M params")
def custom_cnn(cfg: ModelConfig, num_classes: int, in_channels: int,
               image_size: int) -> nn.Module:
    """Six layers, ~286k parameters whatever the image size (adaptive pool before the head).

    Three 2×2 pools keep the convolutions cheap on a CPU (~9 M MACs per 28-px image);
    ``ceil_mode`` lets even 8-px inputs through (8 → 4 → 2 → 1). A 2×2 max-pool head keeps
    coarse position, which a global average loses: on Fashion-MNIST it reaches 0.90 test
    accuracy after 3 epochs of SGD (lr 0.01, momentum 0.9, batch 128) against 0.885 for a
    global-average head of the same size.

    >>> import torch
    >>> from convbench.config import ModelConfig
    >>> net = custom_cnn(ModelConfig(name="custom-cnn"), 10, 3, 32)
    >>> sum(p.numel() for p in net.parameters())
    286250
    """
    p = cfg.dropout or 0.2
    pool = partial(nn.MaxPool2d, 2, ceil_mode=True)
    features = nn.Sequential(
        *_conv_bn(in_channels, 32, cfg), pool(),
        *_conv_bn(32, 64, cfg), pool(),
        *_conv_bn(64, 96, cfg), pool(),
        *_conv_bn(96, 128, cfg), nn.AdaptiveMaxPool2d(2),
    )
    classifier = nn.Sequential(
        nn.Flatten(), nn.Dropout(p), nn.Linear(128 * 2 * 2, 192), make_activation(cfg.activation),
        nn.Dropout(p), nn.Linear(192, num_classes),
    )
    return init_weights(FeaturesClassifier(features, classifier), cfg.init)


class AlexNet(nn.Module):
    """torchvision's AlexNet layout (``features``, ``avgpool``, ``classifier``)."""

    def __init__(self, features: nn.Sequential, avgpool: nn.Module, classifier: nn.Sequential):
        super().__init__()
        self.features, self.avgpool, self.classifier = features, avgpool, classifier

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@register("alexnet", "alexnet", reads={"activation", "init", "dropout"},
          description="AlexNet with ReLU + dropout (0.5 unless model.dropout is set): "
          "5×5 stride-1 stem, 1024-unit head below 112 px; torchvision's exact layout at "
          "112 px and above",
          min_side=16)
def alexnet(cfg: ModelConfig, num_classes: int, in_channels: int,
            image_size: int) -> nn.Module:
    """AlexNet sized for the input: small images keep their resolution in the stem.

    At ≥112 px the module tree equals torchvision's ``alexnet`` (11×11 stride-4 stem, 6×6
    pool, 4096-unit head), so ImageNet weights map onto it by name.

    >>> import torch
    >>> from convbench.config import ModelConfig
    >>> alexnet(ModelConfig(name="alexnet"), 10, 3, 32)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    large = image_size >= LARGE_INPUT
    act = partial(make_activation, cfg.activation)
    pool = partial(nn.MaxPool2d, 3, 2)
    stem = (nn.Conv2d(in_channels, 64, 11, stride=4, padding=2) if large
            else nn.Conv2d(in_channels, 64, 5, padding=2))
    features = nn.Sequential(
        stem, act(), pool(),
        nn.Conv2d(64, 192, 5, padding=2), act(), pool(),
        nn.Conv2d(192, 384, 3, padding=1), act(),
        nn.Conv2d(384, 256, 3, padding=1), act(),
        nn.Conv2d(256, 256, 3, padding=1), act(), pool(),
    )
    side, hidden = (6, 4096) if large else (2, 1024)
    p = cfg.dropout or 0.5
    classifier = nn.Sequential(
        nn.Dropout(p), nn.Linear(256 * side * side, hidden), act(),
        nn.Dropout(p), nn.Linear(hidden, hidden), act(),
        nn.Linear(hidden, num_classes),
    )
    net = AlexNet(features, nn.AdaptiveAvgPool2d(side), classifier)
    return init_weights(net, cfg.init)
