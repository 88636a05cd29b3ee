"""Weight EMA: an exponential moving average of a model's weights, updated after every
optimiser step, that often generalises better than the last weights (Polyak averaging).

The average starts at the initial weights with a warm-up of the decay,
``min(decay, (1 + t) / (10 + t))`` at update ``t`` (as TensorFlow's
``ExponentialMovingAverage`` with ``num_updates``), so a short run is not dominated by its
random initialisation. Floating-point buffers (BatchNorm statistics) are averaged the same
way, integer ones copied. Its state (the averaged tensors and ``t``) goes into every
checkpoint, so a resumed run continues the same average.

>>> import torch
>>> net = torch.nn.Linear(2, 1)
>>> ema = WeightEma(net, decay=0.9)
>>> with torch.no_grad():
...     _ = net.weight.add_(1.0)
>>> ema.update()
>>> bool((ema.model.weight - net.weight).abs().max() < 1.0), ema.updates
(True, 1)
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightEma:
    """The EMA copy (:attr:`model`) of ``source``, updated by :meth:`update`."""

    def __init__(self, source: nn.Module, decay: float):
        self.source, self.decay, self.updates = source, decay, 0
        self.model = copy.deepcopy(source).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._pairs = list(zip(self.model.state_dict().values(), source.state_dict().values(),
                               strict=True))
        # The tensor lists of the per-step update, built once (state_dict tensors are the
        # modules' own, detached, and optimiser steps and loads change them in place).
        self._avg = [a for a, _ in self._pairs if a.is_floating_point()]
        self._src = [s for a, s in self._pairs if a.is_floating_point()]
        self._other = [(a, s) for a, s in self._pairs if not a.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the source's current weights (after a step)."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._avg, self._src, 1.0 - d)
        for a, s in self._other:
            a.copy_(s)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
