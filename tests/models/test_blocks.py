"""The study-004 `blocks` constructor: structure, parameter count, limits, inits."""

import math

import pytest
import torch
from torch import nn

from convbench.config import ModelConfig
from convbench.errors import ConfigError
from convbench.models import ACTIVATIONS, count_params, create_model


def blocks(**fields) -> ModelConfig:
    return ModelConfig(name="blocks", **fields)


def test_param_count_matches_a_hand_count():
    # 8×8×1 input, 1 block of 2 filters, two 3×3 convs, pool → 2×4×4 = 32 flattened;
    # two dense layers of 32 units (the default: flattened size), then 10 classes.
    conv1 = 1 * 2 * 3 * 3 + 2
    conv2 = 2 * 2 * 3 * 3 + 2
    dense = (32 * 32 + 32) * 2
    out = 32 * 10 + 10
    net = create_model(blocks(blocks=1, base_filters=2), 10, 1, 8)
    assert count_params(net) == conv1 + conv2 + dense + out == 2500


def test_filters_double_per_block_and_head_uses_flattened_size():
    net = create_model(blocks(blocks=3, base_filters=4, convs_per_block=1), 10, 3, 32)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    flat = 16 * 4 * 4
    assert [(lin.in_features, lin.out_features) for lin in linears] == [
        (flat, flat), (flat, flat), (flat, 10)]


def test_digits_sized_inputs():
    net = create_model(blocks(blocks=2, base_filters=8), 10, 1, 8)  # 8 → 4 → 2 px
    assert net.classifier[1].in_features == 16 * 2 * 2
    with torch.inference_mode():
        assert net.eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    create_model(blocks(blocks=3, base_filters=2), 10, 1, 8)  # 1 px left: still fine


def test_too_many_blocks_says_how_many_fit():
    with pytest.raises(ConfigError, match="at most 3 blocks for 8-px"):
        create_model(blocks(blocks=4), 10, 1, 8)
    with pytest.raises(ConfigError, match="at most 4 blocks for 28-px"):
        create_model(blocks(blocks=5), 10, 1, 28)


def test_options_change_the_layers():
    cfg = blocks(blocks=2, base_filters=4, batch_norm=True, dropout=0.25, activation="gelu",
                 dense_layers=1, dense_units=12, kernel_size=5)
    net = create_model(cfg, 10, 1, 16)
    kinds = {type(m) for m in net.modules()}
    assert {nn.BatchNorm2d, nn.Dropout, nn.GELU} <= kinds and nn.ReLU not in kinds
    assert net.features[0][0].kernel_size == (5, 5)
    assert [m.out_features for m in net.modules() if isinstance(m, nn.Linear)] == [12, 10]


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds(activation):
    net = create_model(blocks(base_filters=2, activation=activation), 3, 1, 8)
    assert type(ACTIVATIONS[activation]()) in {type(m) for m in net.modules()}
    assert net.eval()(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def layers(net):
    return [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def fans(layer):
    w = layer.weight
    receptive = w[0, 0].numel()
    return w.shape[1] * receptive, w.shape[0] * receptive


def test_glorot_uniform_is_the_default_init():
    torch.manual_seed(0)
    net = create_model(blocks(blocks=1, base_filters=8), 10, 1, 8)
    for layer in layers(net):
        fan_in, fan_out = fans(layer)
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight.detach()
        assert w.abs().max() <= bound
        assert torch.count_nonzero(layer.bias) == 0
        if w.numel() >= 500:  # enough draws to tell Glorot from PyTorch's default
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_kaiming_normal_and_default_inits():
    torch.manual_seed(0)
    net = create_model(blocks(blocks=1, base_filters=8, init="kaiming_normal"), 10, 1, 8)
    big = max(layers(net), key=lambda m: m.weight.numel())
    assert big.weight.std().item() == pytest.approx(math.sqrt(2 / fans(big)[0]), rel=0.1)
    default = create_model(blocks(blocks=1, base_filters=8, init="default"), 10, 1, 8)
    assert all(torch.count_nonzero(m.bias) > 0 for m in layers(default))


def test_same_seed_same_weights():
    def weights(seed, name="B2FL4"):
        torch.manual_seed(seed)
        return create_model(ModelConfig(name=name), 10, 3, 16).state_dict()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    r1, r2 = weights(3, "resnet20"), weights(3, "resnet20")
    assert all(torch.equal(r1[k], r2[k]) for k in r1)


def test_simple_cnn_is_two_convs_and_one_dense():
    net = create_model(ModelConfig(name="simple-cnn"), 10, 1, 28)
    assert [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)] == [32, 64]
    assert [m.in_features for m in net.modules() if isinstance(m, nn.Linear)] == [64 * 7 * 7]
