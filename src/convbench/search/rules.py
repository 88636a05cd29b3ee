"""The screening rules made explicit: aggregate over seeds, chance level, and why a
configuration is discarded.

>>> rule = ScreenConfig(margin_chance=0.05, margin_best=0.10)
>>> discard_reason(0.12, 0.10, [0.12, 0.60], rule)
'no convergence: 0.120 < chance 0.100 + margin 0.050'
>>> discard_reason(0.45, 0.10, [0.45, 0.60], rule)
'far below the group best: 0.450 < best 0.600 − margin 0.100'
>>> discard_reason(0.55, 0.10, [0.55, 0.60], rule) is None
True
"""

from __future__ import annotations

import statistics
from typing import Any

from .space import ScreenConfig


def summarise(values: list[float | None], how: str = "median") -> dict[str, Any]:
    """``value`` (the median or mean used for decisions), ``median``, ``mean``, ``std``, ``n``.

    >>> summarise([0.5, 0.7, 0.6])["value"], summarise([0.5, 0.7], "mean")["std"]
    (0.6, 0.1)
    """
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"value": None, "median": None, "mean": None, "std": None, "n": 0}
    mean = statistics.fmean(xs)
    out = {"median": statistics.median(xs), "mean": mean,
           "std": statistics.pstdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}
    out["std"] = round(out["std"], 12)
    out["value"] = out["median"] if how == "median" else mean
    return out


def chance_of(metrics: dict[str, Any], how: str) -> float:
    """Chance accuracy from a range-test run's metrics: uniform (1/classes), majority-class
    rate of the validation split, or the larger of both (``max``)."""
    uniform = metrics.get("chance_uniform") or 0.0
    majority = metrics.get("chance_majority") or uniform
    return {"uniform": uniform, "majority": majority}.get(how, max(uniform, majority))


def discard_reason(score: float | None, chance: float, group: list[float | None],
                   rule: ScreenConfig) -> str | None:
    """Why a configuration with early ``score`` is discarded among its ``group`` (its own score
    included), or None when it is kept. Rules, in order: not clearly above chance; more than
    ``margin_best`` below the group's best; outside the group's ``top_k``."""
    if score is None:
        return "no score (every range test failed)"
    if score < chance + rule.margin_chance:
        return (f"no convergence: {score:.3f} < chance {chance:.3f} + margin "
                f"{rule.margin_chance:.3f}")
    scores = sorted((s for s in group if s is not None), reverse=True)
    best = scores[0] if scores else score
    if rule.margin_best is not None and score < best - rule.margin_best:
        return (f"far below the group best: {score:.3f} < best {best:.3f} − margin "
                f"{rule.margin_best:.3f}")
    if rule.top_k is not None:
        rank = 1 + sum(s > score for s in scores)
        if rank > rule.top_k:
            return f"outside the top {rule.top_k} of its group (rank {rank})"
    return None
