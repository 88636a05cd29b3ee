"""Each model declares which build fields it reads; a field it does not read really changes
nothing, and setting one gives the user a note instead of silence."""

from __future__ import annotations

import pytest
import torch

from convbench.config import ModelConfig
from convbench.models import MODELS, create_model, ignored_fields, ignored_fields_note
from convbench.models.catalog import BUILD_FIELDS

# A value other than the default for every build field except timm's free-form options.
CHANGED = {"blocks": 3, "base_filters": 8, "convs_per_block": 1, "kernel_size": 5,
           "activation": "gelu", "init": "kaiming_normal", "batch_norm": True, "dropout": 0.3,
           "dense_layers": 1, "dense_units": 64}
# One model per builder function: the others of a family share its code.
BUILDERS = ["blocks", "simple-cnn", "custom-cnn", "alexnet", "vgg11", "vgg11_bn", "resnet20",
            "resnet18"]


def build(**fields) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(ModelConfig(**fields), num_classes=10, in_channels=3, image_size=32)


def same_network(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return (str(a) == str(b) and sa.keys() == sb.keys()
            and all(torch.equal(sa[k], sb[k]) for k in sa))


@pytest.mark.parametrize("name", BUILDERS)
def test_fields_a_model_does_not_read_change_nothing(name):
    unread = sorted(set(CHANGED) - MODELS.get(name).reads)
    base = build(name=name)
    for field in unread:
        assert same_network(base, build(name=name, **{field: CHANGED[field]})), field


@pytest.mark.parametrize("name", BUILDERS)
def test_fields_a_model_reads_change_it(name):
    read = sorted(set(CHANGED) & MODELS.get(name).reads)
    base = build(name=name)
    for field in read:
        if name == "blocks" and field == "dense_units":
            changed = build(name=name, dense_units=64)
        else:
            changed = build(name=name, **{field: CHANGED[field]})
        assert not same_network(base, changed), field


def test_build_fields_are_model_config_fields():
    assert BUILD_FIELDS <= set(ModelConfig.model_fields)


def test_ignored_fields_are_named_in_one_line():
    cfg = ModelConfig(name="resnet20", blocks=3, dropout=0.3, init="kaiming_normal")
    assert ignored_fields(cfg) == ["model.blocks=3", "model.dropout=0.3",
                                   "model.init=kaiming_normal"]
    note = ignored_fields_note(cfg)
    assert note.startswith("note: resnet20 does not read model.blocks=3") and "\n" not in note
    assert ignored_fields_note(ModelConfig(name="B3FL8", dropout=0.3)) is None
    assert ignored_fields(ModelConfig(name="timm/resnet18", dropout=0.3)) == ["model.dropout=0.3"]


def test_train_prints_the_note_and_logs_it(cli):
    proc = cli("train", "--dataset", "digits", "--model", "resnet20", "--set", "model.blocks=3",
               "--set", "data.train_limit=200", "--epochs", "1", check=True)
    assert "note: resnet20 does not read model.blocks=3" in proc.stderr
