"""Early verdicts: stop a screening range test as soon as it is decided.

Three rules, each an option of ``screen`` (docs/search.md, "Cheaper screens"):

* **at chance** (``stop_at_chance: k``) — after a share ``k`` of its iterations the smoothed
  train accuracy has never risen above chance + ``margin_chance``: the configuration sits at
  chance (Adam at [1e-2, 1e-1] in study 004). Decisive: the configuration is discarded.
* **diverged** (``stop_diverged: p``) — the smoothed loss has stayed above its starting value
  for a share ``p`` of the iterations (NaN stops any range test at once). The test ends like a
  diverged one; the discard rules then judge its score.
* **hopeless** (``stop_hopeless``) — after an epoch, even gaining at the fastest rate it has
  shown so far over all its remaining iterations, its validation accuracy could not reach the
  group's best − ``margin_best``. Decisive: the configuration is discarded.

>>> stop = ScreenStop(ScreenConfig(stop_at_chance=0.25), reference=None)
>>> from convbench.training.lr_finder import LRCurve
>>> c = LRCurve(lr=[0.1] * 30, loss=[2.3] * 30, accuracy=[0.1] * 30,
...             loss_smooth=[2.3] * 30, accuracy_smooth=[0.1] * 30)
>>> stop(c, 100, {"chance_uniform": 0.1, "chance_majority": 0.1}, False)[0]
'at chance'
"""

from __future__ import annotations

import math

from ..training.lr_finder import LRCurve
from .rules import chance_of
from .space import ScreenConfig

_WARMUP = 5  # iterations before the smoothed curves mean anything (as the divergence test)


class ScreenStop:
    """The stop rule of one range test (a :data:`~convbench.training.lr_finder.StopRule`).

    ``reference`` is the best early score of its group known when the test starts (for the
    hopeless rule; None switches that rule off for this test)."""

    def __init__(self, rule: ScreenConfig, reference: float | None):
        self.rule, self.reference = rule, reference
        self._start: float | None = None
        self._above = 0  # consecutive iterations with the smoothed loss above its start

    def __call__(self, curve: LRCurve, total: int, chance: dict[str, float],
                 epoch_end: bool) -> tuple[str, str] | None:
        if epoch_end:
            return self._hopeless(curve, total, chance)
        return self._at_chance(curve, total, chance) or self._diverged(curve, total)

    def _warm(self, total: int) -> int:
        return max(_WARMUP, total // 50)

    def _at_chance(self, curve: LRCurve, total: int,
                   chance: dict[str, float]) -> tuple[str, str] | None:
        k = self.rule.stop_at_chance
        n = curve.iterations
        if not k or n < max(self._warm(total) + 1, math.ceil(k * total)):
            return None
        level = chance_of(chance, self.rule.chance) + self.rule.margin_chance
        # Never above the line since the start (after the noisy first batches): a test that
        # learned and then fell back is diverging, not at chance, and keeps its best score.
        peak = max(curve.accuracy_smooth[self._warm(total):n])
        if peak >= level:
            return None
        return ("at chance", f"smoothed train accuracy never above {level:.3f} (chance + "
                f"{self.rule.margin_chance:.3f}; peak {peak:.3f}) in {n} of {total} iterations")

    def _diverged(self, curve: LRCurve, total: int) -> tuple[str, str] | None:
        p = self.rule.stop_diverged
        n = curve.iterations
        if not p or n <= self._warm(total):
            return None
        loss = curve.loss_smooth[-1]
        if self._start is None:  # the smoothed loss once the EMA has settled
            self._start = curve.loss_smooth[self._warm(total)]
        # Called once per iteration: count the iterations in a row above the start.
        self._above = self._above + 1 if loss > self._start else 0
        if self._above < max(self._warm(total), math.ceil(p * total)):
            return None
        return ("diverged", f"smoothed loss above its start {self._start:.3f} for "
                f"{self._above} iterations (now {loss:.3f}), at iteration {n} of {total}")

    def _hopeless(self, curve: LRCurve, total: int,
                  chance: dict[str, float]) -> tuple[str, str] | None:
        margin = self.rule.margin_best
        if not self.rule.stop_hopeless or self.reference is None or margin is None:
            return None
        vals = [e.get("val_accuracy") for e in curve.epochs]
        if not vals or any(v is None or not math.isfinite(v) for v in vals):
            return None
        # The fastest gain per iteration seen so far (from chance at the start), applied to
        # every remaining iteration: what the rest of the test could still add at best.
        prev, rate = chance_of(chance, "uniform"), 0.0
        for row, v in zip(curve.epochs, vals, strict=True):
            rate = max(rate, (v - prev) / max(1, row.get("iterations") or 1))
            prev = v
        best, left = max(vals), total - curve.iterations
        bound = min(1.0, best + rate * left)
        line = self.reference - margin
        if bound >= line:
            return None
        return ("hopeless", f"val {best:.3f} after {curve.iterations} of {total} iterations "
                f"could reach at most {bound:.3f} < group best {self.reference:.3f} − margin "
                f"{margin:.3f}")

