"""The screening rules made explicit: aggregate over seeds, chance level, and why a
configuration is discarded.

>>> rule = ScreenConfig(margin_chance=0.05, margin_best=0.10)
>>> verdict(0.12, 0.10, [0.12, 0.60], rule)
('no convergence', 'no convergence: 0.120 < chance 0.100 + margin 0.050')
>>> verdict(0.45, 0.10, [0.45, 0.60], rule)[1]
'far below the group best: 0.450 < best 0.600 − margin 0.100'
>>> verdict(0.55, 0.10, [0.55, 0.60], rule) is None
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


# The rules by name, in the order they apply: the two early stops that decide a verdict
# (search/early.py), then the discard rule over the early scores.
RULES = ("at chance", "hopeless", "no score", "no convergence", "far below the group best",
         "top-k")


def decisive(early_stop: dict | None) -> bool:
    """Whether a range test's early stop decides its configuration's verdict.

    >>> decisive({"rule": "at chance"}), decisive({"rule": "diverged"}), decisive(None)
    (True, False, False)
    """
    return bool(early_stop) and early_stop.get("rule") in RULES[:2]


def verdict(score: float | None, chance: float, group: list[float | None], rule: ScreenConfig,
            early_stop: dict | None = None) -> tuple[str, str] | None:
    """``(rule, why)`` when a configuration is discarded, None when it is kept: a decisive
    early stop of its range test first, then the discard rules: no score; not clearly above
    chance; more than ``margin_best`` below the group's best (its own score included);
    outside the group's ``top_k``."""
    if decisive(early_stop):
        assert early_stop is not None
        return early_stop["rule"], (
            f"stopped early ({early_stop['rule']}) at {early_stop['fraction']:.0%} of its "
            f"range test: {early_stop['why']}")
    return _discard(score, chance, group, rule)


def _discard(score: float | None, chance: float, group: list[float | None],
             rule: ScreenConfig) -> tuple[str, str] | None:
    if score is None:
        return "no score", "no score (every range test failed)"
    if score < chance + rule.margin_chance:
        return "no convergence", (f"no convergence: {score:.3f} < chance {chance:.3f} + margin "
                                  f"{rule.margin_chance:.3f}")
    scores = sorted((s for s in group if s is not None), reverse=True)
    best = scores[0] if scores else score
    if rule.margin_best is not None and score < best - rule.margin_best:
        return "far below the group best", (
            f"far below the group best: {score:.3f} < best {best:.3f} − margin "
            f"{rule.margin_best:.3f}")
    if rule.top_k is not None:
        rank = 1 + sum(s > score for s in scores)
        if rank > rule.top_k:
            return "top-k", f"outside the top {rule.top_k} of its group (rank {rank})"
    return None


def distance_to_threshold(score: float, chance: float, group: list[float | None],
                          rule: ScreenConfig) -> float:
    """How far ``score`` is from the nearest line a discard rule draws in its group: chance +
    margin, best − margin, and the middle between the k-th and (k+1)-th score with top_k.

    >>> round(distance_to_threshold(0.62, 0.1, [0.62, 0.70], ScreenConfig()), 3)
    0.02
    """
    lines = [chance + rule.margin_chance]
    scores = sorted((s for s in group if s is not None), reverse=True)
    if scores and rule.margin_best is not None:
        lines.append(scores[0] - rule.margin_best)
    if rule.top_k is not None and len(scores) > rule.top_k:
        lines.append((scores[rule.top_k - 1] + scores[rule.top_k]) / 2)
    return min(abs(score - line) for line in lines)


def more_seeds(stats: dict[str, Any], chance: float, group: list[float | None],
               rule: ScreenConfig) -> list[int]:
    """Adaptive seeds: the seeds a configuration screened with ``stats`` (its early scores'
    summary) should run next — none when its verdict is clear. With one seed, "near" is
    within ``rule.near`` of a threshold and earns a second seed; with more, the seeds' own
    spread decides: within ``spread_z`` × their std of a threshold earns all of ``seeds``.

    >>> rule = ScreenConfig(seeds=[0, 1, 2], near=0.03)
    >>> more_seeds({"value": 0.62, "n": 1, "std": 0.0}, 0.1, [0.62, 0.70], rule)
    [0, 1]
    >>> more_seeds({"value": 0.40, "n": 1, "std": 0.0}, 0.1, [0.40, 0.70], rule)
    []
    """
    n, seeds = stats.get("n") or 0, list(rule.seeds)
    if stats.get("value") is None or n == 0 or n >= len(seeds):
        return []
    band = rule.near if n == 1 else rule.spread_z * (stats.get("std") or 0.0)
    if distance_to_threshold(stats["value"], chance, group, rule) > band:
        return []
    return seeds[:2] if n == 1 else seeds
