"""The sampler and pruner of each phase of a search (Optuna stores neither: every worker
process makes its own from the search's spec).

>>> from convbench.search.space import parse
>>> spec = parse({"base": {}, "params": {"model.blocks": [1, 2]}, "search": {"strategy": "tpe"}})
>>> type(make_sampler(spec, "train", 1, 2)).__name__
'TPESampler'
"""

from __future__ import annotations

import optuna

from . import space as sp

DEFAULT_TRIALS = 20


def make_sampler(spec: sp.SearchSpec, phase: str, salt: int, workers: int):
    """The phase's sampler. Only ``train`` of random/tpe samples; the others run fixed points.
    ``salt`` differs per worker and per start, so resumed or parallel workers do not replay
    each other's random draws."""
    seed = spec.search.sampler_seed + 7919 * salt
    if phase == "train" and spec.search.strategy == "tpe":
        n = spec.search.trials or DEFAULT_TRIALS
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, n // 3)),
                                          constant_liar=workers > 1)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(spec: sp.SearchSpec, phase: str):
    """The Optuna pruner of the ``train`` phase (``median`` = percentile 50)."""
    p = spec.search.pruner
    if phase == "train" and spec.search.strategy == "screen" and spec.prunes_training:
        # The screen's survivors trained by successive halving (ASHA on the survivors).
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.screen.halving_min_epochs,
            reduction_factor=spec.screen.halving_factor)
    if phase != "train" or p.name in ("none", "screen"):
        return optuna.pruners.NopPruner()
    if p.name in ("median", "percentile"):
        return optuna.pruners.PercentilePruner(50.0 if p.name == "median" else p.percentile,
                                               n_startup_trials=p.startup_trials,
                                               n_warmup_steps=p.warmup_epochs)
    if p.name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource,
                                                      reduction_factor=p.reduction_factor)
    return optuna.pruners.HyperbandPruner(min_resource=p.min_resource,
                                          max_resource=max(p.min_resource, spec.full_epochs),
                                          reduction_factor=p.reduction_factor)
