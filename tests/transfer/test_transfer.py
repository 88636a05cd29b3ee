"""Freeze, truncate, re-initialise, per-group LR and gradual unfreezing: each changes exactly
the parameters it should and leaves the others alone."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transfer_helpers import tiny

from convbench.config import ModelConfig, OptimConfig
from convbench.errors import ConfigError
from convbench.models import create_model
from convbench.models.anatomy import backbone_units, select
from convbench.training import train
from convbench.training.optim import make_optimizer

LR = 0.1


def build(name="B2FL4", channels=1, side=8, classes=10, seed=0, **model):
    torch.manual_seed(seed)
    return create_model(ModelConfig(name=name, **model), classes, channels, side)


def snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def step(net, channels=1, side=8, classes=10, optim="sgd"):
    """One real optimiser step, LRs set per group as the trainer does (LR × lr_scale)."""
    groups = net.param_groups() if hasattr(net, "param_groups") else list(net.parameters())
    opt = make_optimizer(OptimConfig(name=optim, lr=LR, momentum=0.0), groups)
    for g in opt.param_groups:
        g["lr"] = LR * g["lr_scale"]
    net.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, channels, side, side, generator=g)
    y = torch.randint(0, classes, (16,), generator=g)
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in net.named_parameters()}
    opt.step()
    return grads


def changed(before, net):
    after = net.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


def params_of(net, selector):
    return select(net, selector)


def test_freeze_backbone_trains_only_the_head_and_keeps_bn_statistics():
    net = build(batch_norm=True, transfer={"freeze": "backbone"})
    before = snapshot(net)
    step(net)
    moved = changed(before, net)
    head = params_of(net, "head")
    assert head and head <= moved
    assert not {k for k in moved if k.startswith("features.")}  # weights and running stats


def test_frozen_batchnorm_statistics_update_when_freeze_bn_is_off():
    net = build(batch_norm=True, transfer={"freeze": "backbone", "freeze_bn": False})
    before = snapshot(net)
    step(net)
    moved = changed(before, net)
    assert "features.0.1.running_mean" in moved
    assert "features.0.1.weight" not in moved and "features.0.0.weight" not in moved


def test_freeze_first_n_units():
    net = build("resnet20", channels=3, side=8, transfer={"freeze": 2})
    assert [u.name for u in backbone_units(net)][:2] == ["stem", "layer1"]
    before = snapshot(net)
    step(net, channels=3)
    moved = changed(before, net)
    frozen = {k for k in before if k.startswith(("conv1", "bn1", "layer1."))}
    assert frozen and not (frozen & moved)
    assert "layer2.0.conv1.weight" in moved and "fc.weight" in moved


def test_truncate_keeps_the_first_units_and_puts_a_new_head_on_top():
    full = build("vgg11", channels=1, side=32)
    net = build("vgg11", channels=1, side=32,
                transfer={"truncate": 2, "freeze": "backbone",
                          "head": {"units": [16], "batch_norm": True, "dropout": 0.5}})
    names = set(net.state_dict())
    assert {"features.0.weight", "features.3.weight"} <= names  # units 0 and 1 kept
    assert not any(n.startswith(("features.6", "features.8")) for n in names)  # dropped
    assert net.classifier[1].in_features == 128 and net.classifier[-1].out_features == 10
    assert isinstance(net.classifier[2], torch.nn.BatchNorm1d)
    # Kept layers are untouched by truncation (same seed, same weights as the full model).
    torch.testing.assert_close(net.features[3].weight, full.features[3].weight)
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    before = snapshot(net)
    step(net, side=32)
    moved = changed(before, net)
    assert not {k for k in moved if k.startswith("features.")}
    assert {"classifier.1.weight", "classifier.5.weight"} <= moved


def test_truncating_everything_is_refused():
    with pytest.raises(ConfigError, match="keeps everything"):
        build("vgg11", channels=1, side=32, transfer={"truncate": 5})


@pytest.mark.parametrize("transfer, message", [
    ({"freeze": -1}, "freeze = -1 is not a number of backbone units: the backbone has 2"),
    ({"freeze": 99}, "freeze = 99 is not a number of backbone units: the backbone has 2"),
    ({"head": {"units": [0]}}, r"head.units = \[0\]: every hidden layer needs at least 1"),
])
def test_transfer_counts_outside_the_model_are_refused(transfer, message):
    with pytest.raises(ConfigError, match=message):
        build(transfer=transfer)


def test_freeze_counts_from_none_to_every_unit_are_accepted():
    def plan(freeze):  # group name → first epoch it trains (None: frozen)
        return {g["name"]: g["trainable_from"]
                for g in build(transfer={"freeze": freeze}).param_groups()}

    assert plan(0) == {"features.0": 1, "features.1": 1, "head": 1}
    assert plan(2) == plan("backbone") == {"features.0": None, "features.1": None, "head": 1}


def test_reinit_changes_only_the_chosen_layers(tmp_path):
    source = build()
    path = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    net = build(pretrained=str(path), seed=3,
                transfer={"reinit": ["features.1", "classifier.5"]})
    file = load_file(path)
    redrawn = {k for k in file if not torch.equal(file[k], net.state_dict()[k])}
    assert {"features.1.0.weight", "features.1.0.bias", "classifier.5.weight"} <= redrawn
    assert all(k.startswith(("features.1.", "classifier.5.")) for k in redrawn)
    # Torch7's uniform reset, as the study: weight and bias within ±1/sqrt(fan_in).
    conv = net.features[1][0]  # conv → ReLU → conv → ReLU → pool: layers 0 and 2
    bound = 1 / math.sqrt(conv.weight[0].numel())
    assert conv.weight.abs().max() <= bound and conv.bias.abs().max() <= bound
    assert conv.bias.abs().max() > 0


def test_reinit_glorot_zeroes_the_biases():
    net = build(batch_norm=True, transfer={"reinit": ["head"], "reinit_init": "glorot_uniform"})
    assert torch.count_nonzero(net.classifier[5].bias) == 0


def test_per_group_learning_rates_scale_each_update():
    net = build(transfer={"lr_scale": {"head": 10, "0": 0}})
    scale = {g["name"]: g["lr_scale"] for g in net.param_groups()}
    assert scale == {"features.0": 0.0, "features.1": 1.0, "head": 10.0}
    before = snapshot(net)
    grads = step(net)
    after = net.state_dict()
    assert torch.equal(after["features.0.0.weight"], before["features.0.0.weight"])
    for name, s in (("features.1.0.weight", 1.0), ("classifier.5.weight", 10.0)):
        delta = after[name] - before[name]
        torch.testing.assert_close(delta, -LR * s * grads[name])


def test_discriminative_spread_goes_from_low_to_high():
    net = build("resnet20", channels=3, transfer={"discriminative": [0.01, 1.0]})
    scales = [g["base_scale"] for g in net.param_groups()]
    assert scales[0] == pytest.approx(0.01) and scales[-1] == pytest.approx(1.0)
    assert scales == sorted(scales)


def test_unknown_selector_lists_the_units():
    with pytest.raises(ConfigError, match="features.0, features.1"):
        build(transfer={"freeze": ["nonexistent"]})


@pytest.fixture(scope="module")
def start_weights(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("s") / "runs.db")
    run = train(tiny(), store=store)
    return store, run["artifacts"]["best_weights"]


def test_gradual_unfreezing_trains_the_head_first(start_weights):
    store, path = start_weights
    start = load_file(path)
    config = tiny(model={"name": "B2FL4", "batch_norm": True, "pretrained": path,
                         "transfer": {"unfreeze_after": 1}},
                  train={"epochs": 1, "batch_size": 32, "threads": 1})
    one = load_file(train(config, store=store)["artifacts"]["best_weights"])
    frozen = [k for k in start if k.startswith("features.")]
    assert all(torch.equal(one[k], start[k]) for k in frozen)  # incl. BN running statistics
    assert not torch.equal(one["classifier.5.weight"], start["classifier.5.weight"])
    config["train"]["epochs"] = 2
    two = train(config, store=store)
    lrs = [e["lr"] for e in two["epochs"]]
    assert lrs[0] == lrs[1]  # the logged schedule LR; the frozen groups had 0 in epoch 1
    best = load_file(two["artifacts"]["best_weights"])
    if two["metrics"]["best_epoch"] == 2:
        assert not torch.equal(best["features.0.0.weight"], start["features.0.0.weight"])
    last = torch.load(two["artifacts"]["checkpoint"], weights_only=True)
    assert not torch.equal(last["model"]["features.0.0.weight"], start["features.0.0.weight"])
    scales = {g["name"]: g["lr_scale"] for g in last["optimizer"]["param_groups"]}
    assert scales == {"features.0": 1.0, "features.1": 1.0, "head": 1.0}


def test_no_decay_on_norms_and_biases_keeps_gradual_unfreezing(start_weights):
    store, path = start_weights
    start = load_file(path)
    config = tiny(model={"name": "B2FL4", "batch_norm": True, "pretrained": path,
                         "transfer": {"unfreeze_after": 1}},
                  optim={"name": "adamw", "weight_decay": 0.1, "no_decay_norm_bias": True},
                  train={"epochs": 2, "batch_size": 32, "threads": 1})
    run = train(config, store=store)
    assert run["status"] == "completed"
    last = torch.load(run["artifacts"]["checkpoint"], weights_only=True)
    groups = last["optimizer"]["param_groups"]
    # each transfer group split in two halves that both follow its unfreezing plan
    assert sorted(g["name"] for g in groups) == ["features.0", "features.0", "features.1",
                                                 "features.1", "head", "head"]
    assert {g["lr_scale"] for g in groups} == {1.0}
    assert sorted(g["weight_decay"] for g in groups) == [0.0] * 3 + [0.1] * 3
    assert not torch.equal(last["model"]["features.0.0.weight"], start["features.0.0.weight"])
