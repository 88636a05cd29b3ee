"""The one config builder: shared sections and validators, ``replace``, ``build_config`` and
its one override rule, for run, detection and search configs alike."""

from __future__ import annotations

from typing import ClassVar

import pytest
import yaml
from pydantic import Field, model_validator

from convbench import config as cfgmod
from convbench.config import RunConfig, Section, build_config, config_fields, replace, type_name
from convbench.detection.config import DetectConfig, DetectTrainConfig
from convbench.errors import ConfigError
from convbench.search import space as sp


def test_replace_returns_a_validated_copy_and_leaves_the_original():
    base = RunConfig()
    changed = replace(base, {"train.epochs": 3, "model.name": "B2FL8", "data.image_size": 16})
    assert (changed.train.epochs, changed.model.name, changed.data.image_size) == (3, "B2FL8", 16)
    assert (base.train.epochs, base.model.name, base.data.image_size) == (10, "simple-cnn", None)
    assert replace(changed, {"data.image_size": None}).data.image_size is None  # None clears
    assert type(replace(DetectConfig(), {"train.lr": 0.01})) is DetectConfig
    with pytest.raises(ConfigError, match=r"train.epochs = 0 is invalid"):
        replace(base, {"train.epochs": 0})
    with pytest.raises(ConfigError, match="unknown config field 'train.epoch'"):
        replace(base, {"train.epoch": 3})
    with pytest.raises(ConfigError, match="docs/detection.md"):  # each schema's own hint
        replace(DetectConfig(), {"model.backbon": "resnet18"})


def test_replace_on_a_detection_config_keeps_one_budget():
    in_iterations = DetectConfig(train=DetectTrainConfig(iterations=600))
    in_epochs = replace(in_iterations, {"train.epochs": 2})
    assert (in_epochs.train.epochs, in_epochs.train.iterations) == (2, None)
    with pytest.raises(ConfigError, match="epochs or as iterations, not both"):
        replace(in_iterations, {"train.epochs": 2, "train.iterations": 5})


def test_build_config_layers_file_then_flags_then_sets(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump({"train": {"epochs": 7, "batch_size": 8},
                                    "model": {"name": "B2FL4"}}))
    cfg = build_config(file, {"train.batch_size": 16, "optim.lr": None},
                       ["train.batch_size=64", "schedule.milestones=[0.4, 0.7]"])
    assert cfg.train.epochs == 7                       # from the file
    assert cfg.model.name == "B2FL4"
    assert cfg.optim.lr == RunConfig().optim.lr        # a flag that was not given
    assert cfg.train.batch_size == 64                  # --set beats the flag beats the file
    assert cfg.schedule.milestones == [0.4, 0.7]


@pytest.mark.parametrize("file_text, flags, sets, source", [
    ("{}", {"train.epochs": 0}, [], "flags: train.epochs"),
    ("{}", {}, ["optim.lr=-1"], "--set: optim.lr"),
    ("train:\n  batch_size: 0\n", {}, [], "FILE: train.batch_size"),
    # a --set that fixes the file's bad value wins: the result is checked, not each layer
    ("train:\n  batch_size: 0\n", {}, ["train.batch_size=4", "train.epochs=0"],
     "--set: train.epochs"),
])
def test_an_error_names_the_layer_that_set_the_field(tmp_path, file_text, flags, sets, source):
    file = tmp_path / "c.yaml"
    file.write_text(file_text)
    with pytest.raises(ConfigError) as err:
        build_config(file, flags, sets)
    assert str(err.value).startswith(source.replace("FILE", str(file)))


@pytest.mark.parametrize("item, expected", [
    ("train.seed=3", ("train.seed", 3)),
    ("optim.lr=1e-3", ("optim.lr", 0.001)),               # YAML 1.1 reads this as text
    (" model.name = B2FL8 ", ("model.name", "B2FL8")),
    ("data.classes=[a, b]", ("data.classes", ["a", "b"])),
    ("name=a=b", ("name", "a=b")),                        # split at the first =
    ("train.iterations=null", ("train.iterations", None)),
])
def test_one_override_rule(item, expected):
    assert cfgmod.parse_set(item) == expected


def test_every_config_takes_the_same_override_the_same_way(tmp_path):
    assert build_config(None, {}, ["train.seed=3"]).train.seed == 3
    assert build_config(None, {}, ["train.seed=3"], DetectConfig).train.seed == 3
    assert sp.override({}, ["search.trials=3"]) == {"search": {"trials": 3}}
    for parse in (lambda s: build_config(None, {}, s),
                  lambda s: build_config(None, {}, s, DetectConfig),
                  lambda s: sp.override({}, s)):
        with pytest.raises(ConfigError, match="expected key=value"):
            parse(["train.seed"])


def test_a_budget_flag_replaces_the_files_other_budget(tmp_path):
    file = tmp_path / "d.yaml"
    file.write_text(yaml.safe_dump({"train": {"iterations": 600}}))
    flagged = build_config(file, {"train.epochs": 2.0, "train.iterations": None}, [],
                           DetectConfig)
    assert (flagged.train.epochs, flagged.train.iterations) == (2.0, None)
    by_set = build_config(file, {}, ["train.epochs=3"], DetectConfig)
    assert (by_set.train.epochs, by_set.train.iterations) == (3, None)
    untouched = build_config(file, {"train.lr": 0.01}, [], DetectConfig)
    assert (untouched.train.epochs, untouched.train.iterations) == (None, 600)
    with pytest.raises(ConfigError, match="not both"):  # the command line giving both
        build_config(file, {"train.epochs": 1.0}, ["train.iterations=4"], DetectConfig)


class _Budget(Section):
    minutes: float | None = Field(None, description="budget in minutes")
    seconds: float | None = Field(None, description="budget in seconds")

    @model_validator(mode="after")
    def _one(self) -> _Budget:
        if self.minutes is not None and self.seconds is not None:
            raise ValueError("one budget")
        return self


class _Untimed(Section):
    run: _Budget = _Budget()


class _Timed(_Untimed):
    alternatives: ClassVar[tuple[tuple[str, ...], ...]] = (("run.minutes", "run.seconds"),)


def test_the_budget_rule_is_the_builders_for_any_schema(tmp_path):
    file = tmp_path / "t.yaml"
    file.write_text("run:\n  minutes: 5\n")
    cfg = build_config(file, {"run.seconds": 30}, [], _Timed)
    assert (cfg.run.minutes, cfg.run.seconds) == (None, 30)
    assert replace(cfg, {"run.minutes": 1}).run.seconds is None
    # without the rule the same layers are refused: the rule is the schema's, not a command's
    with pytest.raises(ConfigError, match="one budget"):
        build_config(file, {"run.seconds": 30}, [], _Untimed)


def test_one_fraction_validator_for_milestones_and_detection_steps():
    with pytest.raises(ConfigError, match="milestones are increasing fractions of training"):
        build_config(None, {}, ["schedule.milestones=[0.9, 0.5]"])
    with pytest.raises(ConfigError, match="steps are increasing fractions of training"):
        build_config(None, {}, ["train.steps=[0.5, 1.5]"], DetectConfig)
    milestones = cfgmod.ScheduleConfig.model_fields["milestones"].metadata
    steps = DetectTrainConfig.model_fields["steps"].metadata
    assert [m.func for m in milestones] == [m.func for m in steps]


def test_search_seeds_and_run_seeds_share_their_types():
    with pytest.raises(ConfigError, match="listed twice"):
        sp.parse({"search": {"seeds": [1, 1]}})
    with pytest.raises(ConfigError, match="train.seed"):
        build_config(None, {"train.seed": -1}, [])


@pytest.mark.parametrize("schema", [RunConfig, DetectConfig])
def test_every_field_has_a_readable_type_and_a_description(schema):
    rows = config_fields(schema)
    assert len(rows) > 30
    for path, typ, _default, description in rows:
        assert "<class" not in typ and "typing." not in typ and "Annotated" not in typ, path
        assert description.strip(), f"{path} has no description"


def test_types_read_as_people_write_them():
    by_path = {row[0]: row[1] for row in config_fields()}
    assert by_path["train.epochs"] == "int"
    assert by_path["train.max_time_s"] == "float | None"
    assert by_path["data.label_mode"] == '"fine" | "coarse"'
    assert by_path["schedule.milestones"] == "list[float]"
    assert by_path["model.transfer.head"] == "section | None"
    assert "model.transfer.head.units" in by_path
    assert type_name(dict[str, float]) == "dict[str, float]"


def test_min_lr_is_described_as_the_code_uses_it():
    # cyclical schedules start at optim.lr (training/schedules.py), min_lr is cosine's floor
    description = cfgmod.ScheduleConfig.model_fields["min_lr"].description
    assert "cosine" in description and "optim.lr" in description
    assert "lower bound" not in description
