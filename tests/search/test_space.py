"""Search spaces: parsing, validation messages, grid, labels, Optuna encoding."""

import pytest

from convbench.errors import ConfigError
from convbench.search import space as sp


def _spec(**extra):
    data = {"base": {"data": {"dataset": "digits"}},
            "params": {"model.blocks": [2, 3], "lr_range": [[1e-4, 1e-2], [1e-2, 1e-1]]},
            "search": {"strategy": "screen"}}
    return sp.parse({**data, **extra})


def test_grid_is_the_product_of_choices_and_sets_joint_fields():
    spec = _spec()
    points = sp.grid(spec)
    assert len(points) == 4 and len({sp.key_of(p) for p in points}) == 4
    cfg = sp.run_config(spec, points[1])
    assert (cfg.model.blocks, cfg.optim.lr, cfg.schedule.max_lr) == (2, 1e-2, 1e-1)


def test_trials_below_the_grid_size_keep_a_seeded_sample():
    a = sp.grid(_spec(search={"strategy": "screen", "trials": 3}))
    b = sp.grid(_spec(search={"strategy": "screen", "trials": 3}))
    assert a == b and len(a) == 3


def test_ranges_parse_as_int_or_float_and_log():
    p = sp.parse_param("train.batch_size", {"low": 16, "high": 128, "log": True})
    assert p.integer and p.log
    q = sp.parse_param("optim.weight_decay", {"low": 0, "high": 0.01})
    assert not q.integer


@pytest.mark.parametrize("data, message", [
    ({"params": {"optim.lr": {"low": 1e-4, "high": 1e-1, "log": True}},
      "search": {"strategy": "grid"}}, "needs choices"),
    ({"params": {"model.blockz": [2]}}, "unknown config field"),
    ({"params": {"lr_range": [[1e-4]]}}, "every choice must be a list of 2"),
    ({"params": {"optim.lr": {"low": 1, "high": 0.1}}, "search": {"strategy": "random"}},
     "must be a number below high"),
    ({"params": {"model.blocks": [2]}, "screen": {"group_by": ["lr_range"]}}, "group_by"),
    ({"params": {"model.blocks": [2]}, "search": {"strategy": "screen"}}, "max_lr above lr"),
    ({"serch": {}}, "unknown field 'serch'"),
    ({"search": {"strategy": "screen", "pruner": {"name": "asha"}}}, "its own pruner"),
    ({"params": {"optim.lr": {"low": 1e-3, "high": 1e-2, "step": 0}},
      "search": {"strategy": "random"}}, "step"),
    ({"params": {"model.blocks": [2]}, "search": {"seeds": [0, 0]}}, "listed twice"),
    ({"params": {"model.blocks": [2]}, "screen": {"seeds": [1, 1]}}, "listed twice"),
])
def test_user_errors_are_one_line_config_errors(data, message):
    with pytest.raises(ConfigError, match=message) as info:
        sp.parse({"base": {"data": {"dataset": "digits"}}, **data})
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 300  # no dump of a whole section
    assert "Value error" not in str(info.value)


def test_close_values_get_distinct_labels():
    assert sp.label_of({"optim.lr": 0.00252}) != sp.label_of({"optim.lr": 0.00322})
    assert sp.label_of({"optim.lr": 0.00252}) == "lr=2.5e-3"
    assert sp.label_of({"optim.lr": 1e-4}) == "lr=1e-4"


def test_labels_and_groups():
    spec = _spec(screen={"group_by": ["lr_range"]})
    point = sp.grid(spec)[0]
    assert sp.label_of(point) == "blocks=2 lr_range=1e-4–0.01"
    assert sp.group_of(spec, point) == "lr_range=1e-4–0.01"
    assert sp.group_of(_spec(), point) == "all"


def test_optuna_categorical_values_round_trip():
    import optuna

    spec = _spec()
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(sp.encoded(sp.grid(spec)[3]))
    trial = study.ask()
    assert sp.suggest(trial, spec) == sp.grid(spec)[3]


def test_overrides_and_load(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: {data: {dataset: digits}}\nparams: {model.blocks: [2, 3]}\n")
    spec = sp.load(path, ["search.strategy=random", "search.trials=5", "screen.seeds=[0]"])
    assert spec.search.strategy == "random" and spec.search.trials == 5
    assert spec.screen.seeds == [0]
    # Under params the rest of the key is one (dotted) parameter name.
    spec = sp.load(path, ["params.model.blocks=[3]"])
    assert spec.params == {"model.blocks": [3]}
    with pytest.raises(ConfigError, match="not found"):
        sp.load(tmp_path / "missing.yaml")
