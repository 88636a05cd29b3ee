"""Whole-split conversions on uint8 N×C×H×W tensors: channels, size, and channel statistics.

>>> import torch
>>> x = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
>>> to_channels(x, 3).shape, resize(x, (2, 2)).shape
(torch.Size([2, 3, 4, 4]), torch.Size([2, 1, 2, 2]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma, the weights Pillow uses for RGB → L.
LUMA = (0.299, 0.587, 0.114)
CHUNK = 1024  # images per step: bounds the float scratch memory


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey → RGB (repeat) or RGB → grey (luma); unchanged when it already fits."""
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.repeat(1, 3, 1, 1)
    if have == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        out = torch.empty((x.shape[0], 1, *x.shape[2:]), dtype=torch.uint8)
        for i in range(0, x.shape[0], CHUNK):
            grey = (x[i:i + CHUNK].float() * w).sum(1, keepdim=True)
            out[i:i + CHUNK] = grey.round_().clamp_(0, 255).to(torch.uint8)
        return out
    raise ValueError(f"cannot convert {have} channels to {channels}")


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 images to ``size`` = (H, W)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], *size), dtype=torch.uint8)
    for i in range(0, x.shape[0], CHUNK):
        y = F.interpolate(x[i:i + CHUNK].float(), size=size, mode="bilinear",
                          align_corners=False, antialias=True)
        out[i:i + CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std on the 0..1 scale, accumulated in float64.

    >>> channel_stats(torch.tensor([[[[0, 255]]]], dtype=torch.uint8))
    ((0.5,), (0.5,))
    """
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for i in range(0, x.shape[0], CHUNK):
        v = x[i:i + CHUNK].to(torch.float64) / 255.0
        total += v.sum((0, 2, 3))
        squares += (v * v).sum((0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / n
    std = (squares / n - mean * mean).clamp_(min=0).sqrt()
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
