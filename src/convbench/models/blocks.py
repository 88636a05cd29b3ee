"""The ``blocks`` constructor of study 004, and ``simple-cnn`` as one configuration of it.

Block *i* (from 0) holds ``convs_per_block`` convolutions of ``base_filters·2^i`` filters
(stride 1, same padding; conv → [batch norm] → activation) and ends with a 2×2 max-pool. The
head flattens, applies ``dense_layers`` dense layers of ``dense_units`` units (default: the
flattened size, as in the study) and a final linear layer to the classes.

>>> from convbench.config import ModelConfig
>>> net = blocks_net(ModelConfig(name="blocks", blocks=2, base_filters=4), 10, 1, 8)
>>> net.features[-1][-1]
MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from .catalog import BUILD_FIELDS, register
from .layers import init_weights, make_activation


class FeaturesClassifier(nn.Module):
    """``features`` (convolutional part) then ``classifier`` (flatten + dense head).

    The two names match torchvision's VGG/AlexNet, so freezing "features" means the same
    thing across model families.
    """

    def __init__(self, features: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def max_blocks(image_size: int) -> int:
    """How many 2×2 max-pools a square image of ``image_size`` px survives.

    >>> max_blocks(8), max_blocks(32), max_blocks(28)
    (3, 5, 4)
    """
    return max(image_size.bit_length() - 1, 0)


def conv_block(in_ch: int, out_ch: int, cfg: ModelConfig) -> nn.Sequential:
    """``convs_per_block`` × (conv → [BN] → activation), then a 2×2 max-pool."""
    layers: list[nn.Module] = []
    for i in range(cfg.convs_per_block):
        # A bias right before batch norm is cancelled by its mean subtraction.
        layers.append(nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, cfg.kernel_size,
                                padding="same", bias=not cfg.batch_norm))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(make_activation(cfg.activation))
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


MAX_DENSE_WEIGHTS = 200_000_000  # 800 MB of float32: far above any sensible head


def dense_head(flat: int, num_classes: int, cfg: ModelConfig) -> nn.Sequential:
    """Flatten → ``dense_layers`` × (linear → activation → [dropout]) → linear to classes."""
    units = cfg.dense_units or flat
    weights = flat * units + max(0, cfg.dense_layers - 1) * units * units
    if cfg.dense_layers and weights > MAX_DENSE_WEIGHTS:
        # The study's default (layers as wide as the flattened features) grows with the square
        # of the image area: at 224 px it asks for tens of GB before the first step.
        raise ConfigError(
            f"The dense head would hold {weights / 1e6:,.0f} M weights ({flat:,} flattened "
            f"features × {units:,} units): set model.dense_units (e.g. 256), more "
            "model.blocks, or a smaller data.image_size.")
    layers: list[nn.Module] = [nn.Flatten()]
    width = flat
    for _ in range(cfg.dense_layers):
        layers += [nn.Linear(width, units), make_activation(cfg.activation)]
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = units
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register("blocks", "blocks", reads=BUILD_FIELDS - {"options"},
          description="study-004 constructor: `blocks` × (convs_per_block convs + 2×2 max-pool), "
          "filters base_filters·2^i, dense head; shorthand B<blocks>FL<filters>, e.g. B2FL32")
def blocks_net(cfg: ModelConfig, num_classes: int, in_channels: int,
               image_size: int) -> nn.Module:
    """Build the study-004 network described by ``cfg`` for square inputs of ``image_size``.

    >>> from convbench.config import ModelConfig
    >>> net = blocks_net(ModelConfig(name="blocks", blocks=1, base_filters=2), 10, 1, 8)
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    side = image_size >> cfg.blocks  # each 2×2 max-pool floors the side in half
    if side < 1:
        raise ConfigError(
            f"{cfg.blocks} blocks halve a {image_size}-px image below 1 px: use at most "
            f"{max_blocks(image_size)} blocks for {image_size}-px inputs, or a larger "
            "data.image_size.")
    blocks, ch = [], in_channels
    for i in range(cfg.blocks):
        out = cfg.base_filters * 2**i
        blocks.append(conv_block(ch, out, cfg))
        ch = out
    net = FeaturesClassifier(nn.Sequential(*blocks), dense_head(ch * side * side, num_classes, cfg))
    return init_weights(net, cfg.init)


@register("simple-cnn", "blocks", reads={"activation", "init", "batch_norm"},
          description="study-002 starting CNN: 2 convs (32, 64 filters) with 2×2 max-pools "
          "+ 1 dense output layer; = blocks with blocks=2, base_filters=32, convs_per_block=1, "
          "dense_layers=0")
def simple_cnn(cfg: ModelConfig, num_classes: int, in_channels: int,
               image_size: int) -> nn.Module:
    """The 2-conv + 1-dense CNN; activation, init and batch_norm come from ``cfg`` (it has no
    hidden dense layer, so no dropout).

    >>> from convbench.config import ModelConfig
    >>> simple_cnn(ModelConfig(), 10, 3, 32)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    fixed = {"blocks": 2, "base_filters": 32, "convs_per_block": 1, "kernel_size": 3,
             "dense_layers": 0}
    return blocks_net(cfg.model_copy(update=fixed), num_classes, in_channels, image_size)
