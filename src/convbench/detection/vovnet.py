"""VoVNet (One-Shot Aggregation) backbones, after Lee et al. 2019 and the study's table 3.2.

An OSA module runs ``layers`` 3×3 convolutions in sequence and concatenates the module input
and every conv output *once*, then a 1×1 conv sets the output width. A stage is a 3×3/2 max
pool (not before stage 2) followed by one or more modules.

The stem is 3×3/64 s2 → 3×3/64 → 3×3/128 s2. The study's table prints stride 1 for the third
conv; we follow the original VoVNet (stride 2) so stage outputs sit at strides 4/8/16/32,
as the FPN expects.

>>> net = VoVNet(**VOVNET_SPECS["vovnet19"])
>>> [f.shape[1] for f in net(torch.zeros(1, 3, 64, 64))]
[256, 512, 768, 1024]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NormLayer = Callable[[int], nn.Module]

# stage_ch: widths of the 3×3 convs; out_ch: module outputs; layers: convs per module;
# blocks: modules per stage. "lite" is the reference implementation's slim V-19 (the study's
# table repeats the V-19 widths for it, apart from a typo; the slim widths are what make it
# lighter).
VOVNET_SPECS: dict[str, dict] = {
    "vovnet19-lite": dict(stage_ch=(64, 80, 96, 112), out_ch=(112, 256, 384, 512), layers=3,
                          blocks=(1, 1, 1, 1)),
    "vovnet19": dict(stage_ch=(128, 160, 192, 224), out_ch=(256, 512, 768, 1024), layers=3,
                     blocks=(1, 1, 1, 1)),
    "vovnet39": dict(stage_ch=(128, 160, 192, 224), out_ch=(256, 512, 768, 1024), layers=5,
                     blocks=(1, 1, 2, 2)),
    "vovnet57": dict(stage_ch=(128, 160, 192, 224), out_ch=(256, 512, 768, 1024), layers=5,
                     blocks=(1, 1, 4, 3)),
    "vovnet99": dict(stage_ch=(128, 160, 192, 224), out_ch=(256, 512, 768, 1024), layers=5,
                     blocks=(1, 3, 8, 3)),
}


def conv_bn_relu(cin: int, cout: int, norm: NormLayer, kernel: int = 3, stride: int = 1
                 ) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         norm(cout), nn.ReLU(inplace=True))


class OSAModule(nn.Module):
    """``layers`` sequential 3×3 convs, one concatenation of all, a 1×1 conv."""

    def __init__(self, cin: int, mid: int, cout: int, layers: int, norm: NormLayer):
        super().__init__()
        self.layers = nn.ModuleList(
            conv_bn_relu(cin if i == 0 else mid, mid, norm) for i in range(layers))
        self.concat = conv_bn_relu(cin + layers * mid, cout, norm, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return self.concat(torch.cat(outs, dim=1))


class VoVNet(nn.Module):
    """Stem + stages ``stage2``…``stage5``; ``forward`` returns the four stage outputs."""

    def __init__(self, stage_ch: tuple[int, ...], out_ch: tuple[int, ...], layers: int,
                 blocks: tuple[int, ...], norm: NormLayer = nn.BatchNorm2d):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(3, 64, norm, stride=2),
                                  conv_bn_relu(64, 64, norm),
                                  conv_bn_relu(64, 128, norm, stride=2))
        cin = 128
        for i, (mid, cout, n) in enumerate(zip(stage_ch, out_ch, blocks, strict=True)):
            mods: list[nn.Module] = [nn.MaxPool2d(3, 2, ceil_mode=True)] if i > 0 else []
            for _ in range(n):
                mods.append(OSAModule(cin, mid, cout, layers, norm))
                cin = cout
            self.add_module(f"stage{i + 2}", nn.Sequential(*mods))
        self.out_channels = list(out_ch)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for i in range(2, 6):
            x = getattr(self, f"stage{i}")(x)
            feats.append(x)
        return feats
