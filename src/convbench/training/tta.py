"""Test-time augmentation: a classifier's logits averaged over views of each image — the
image and its mirror, each also shifted by one pixel up-left and down-right (zero fill, the
mean after normalisation), six views in all. One mechanism for evaluation (``train.tta``)
and ``convbench predict --tta``.

>>> import torch
>>> x = torch.randn(2, 1, 8, 8)
>>> len(views(x)), views(x)[1].equal(x.flip(3))
(6, True)
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
>>> tta_logits(net, x).shape
torch.Size([2, 3])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHIFTS = ((1, 1), (-1, -1))  # (dy, dx) in pixels


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move the images by (dy, dx) pixels, filling the uncovered border with 0.

    >>> shift(torch.arange(4.0).view(1, 1, 2, 2), 1, 0)[0, 0].tolist()
    [[0.0, 0.0], [0.0, 1.0]]
    """
    h, w = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + h, left:left + w]


def views(x: torch.Tensor) -> list[torch.Tensor]:
    """The six views of a prepared (normalised) batch: identity, mirror, then the shifts."""
    bases = [x, x.flip(3)]
    return bases + [shift(b, dy, dx) for dy, dx in SHIFTS for b in bases]


def tta_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean float logits of ``model`` over :func:`views` of ``x`` (call it in eval mode,
    under the caller's autocast)."""
    return torch.stack([model(v).float() for v in views(x)]).mean(0)
