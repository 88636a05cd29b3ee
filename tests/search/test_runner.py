"""Samplers and pruners as the search builds them (median is percentile 50, …)."""

import optuna
import pytest

from convbench.search.runner import make_pruner, make_sampler
from convbench.search.space import parse

BASE = {"base": {"data": {"dataset": "digits"}},
        "params": {"model.blocks": [1, 2], "lr_range": [[1e-4, 1e-2]]}}


def _spec(strategy="grid", **pruner):
    return parse({**BASE, "search": {"strategy": strategy, "epochs": 9, "pruner": pruner}})


@pytest.mark.parametrize("pruner, cls", [
    ({"name": "none"}, optuna.pruners.NopPruner),
    ({"name": "screen"}, optuna.pruners.NopPruner),
    ({"name": "median"}, optuna.pruners.PercentilePruner),
    ({"name": "percentile", "percentile": 10}, optuna.pruners.PercentilePruner),
    ({"name": "asha"}, optuna.pruners.SuccessiveHalvingPruner),
    ({"name": "hyperband"}, optuna.pruners.HyperbandPruner),
])
def test_pruners(pruner, cls):
    assert isinstance(make_pruner(_spec(**pruner), "train"), cls)
    # Only the train phase prunes: screening and audits always run to the end.
    assert isinstance(make_pruner(_spec(**pruner), "audit"), optuna.pruners.NopPruner)


def test_median_is_percentile_fifty_and_prunes_below_it():
    pruner = make_pruner(_spec(name="median", startup_trials=1, warmup_epochs=0), "train")
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for value in (0.9, 0.8):
        t = study.ask()
        t.report(value, 1)
        study.tell(t, value)
    low = study.ask()
    low.report(0.1, 1)
    assert low.should_prune()
    high = study.ask()
    high.report(0.95, 1)
    assert not high.should_prune()


def test_tpe_only_where_it_samples():
    spec = _spec("tpe")
    assert isinstance(make_sampler(spec, "train", 1, 2), optuna.samplers.TPESampler)
    assert isinstance(make_sampler(spec, "audit", 1, 2), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler(_spec("random"), "train", 1, 1),
                      optuna.samplers.RandomSampler)


def test_a_trial_is_never_pruned_at_its_last_epoch():
    from convbench.search.trials import pruning_hook

    # This pruner prunes every value below 0.99: the hook must still let the last epoch end.
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=0.99))
    hook = pruning_hook(study.ask(), last_epoch=3)
    assert hook(1, {"val_accuracy": 0.5}) is True
    assert hook(3, {"val_accuracy": 0.5}) is False


@pytest.mark.parametrize("survivors, cls", [("full", optuna.pruners.NopPruner),
                                            ("halving", optuna.pruners.SuccessiveHalvingPruner)])
def test_screen_survivors_in_full_or_by_successive_halving(survivors, cls):
    spec = parse({**BASE, "search": {"strategy": "screen", "epochs": 9},
                  "screen": {"survivors": survivors}})
    assert isinstance(make_pruner(spec, "train"), cls)
    assert spec.prunes_training is (survivors == "halving")
    assert isinstance(make_pruner(spec, "screen"), optuna.pruners.NopPruner)
    assert isinstance(make_pruner(spec, "audit"), optuna.pruners.NopPruner)
