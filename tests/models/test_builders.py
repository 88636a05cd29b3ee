"""Every registered model builds and runs at the sizes and channel counts users feed it."""

import pytest
import torch
import torchvision
from torch import nn

from convbench.config import ModelConfig
from convbench.errors import ConfigError
from convbench.models import MODELS, count_params, create_model, input_requirements

# The study's default head (dense units = flattened size) is 134 M parameters at 64 px;
# a narrower head keeps the matrix light while exercising the same code.
LIGHT = {"blocks": {"dense_units": 64}}


def build(name: str, side: int, channels: int, classes: int = 10) -> nn.Module:
    cfg = ModelConfig(name=name, **LIGHT.get(name, {}))
    return create_model(cfg, classes, channels, side)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("side", [28, 32, 64])
@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_forward(name, side, channels):
    torch.manual_seed(0)
    assert input_requirements(ModelConfig(name=name), side, channels) == (channels, side)
    net = build(name, side, channels).eval()
    x = torch.randn(2, channels, side, side).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = net(x)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name,channels", [("resnet20", 1), ("custom-cnn", 3), ("simple-cnn", 3),
                                           ("resnet18", 1)])
def test_forward_at_224(name, channels):
    net = build(name, 224, channels, classes=7).eval()
    with torch.inference_mode():
        assert net(torch.randn(2, channels, 224, 224)).shape == (2, 7)


@pytest.mark.parametrize("ours,theirs", [("alexnet", "alexnet"), ("vgg11", "vgg11"),
                                         ("vgg16_bn", "vgg16_bn"), ("resnet50", "resnet50")])
def test_large_inputs_match_torchvision_layout(ours, theirs):
    # Same names and shapes as torchvision at ImageNet size, so its weights map by name.
    with torch.device("meta"):
        mine = build(ours, 224, 3, classes=10).state_dict()
        ref = getattr(torchvision.models, theirs)(num_classes=10).state_dict()
    assert {k: v.shape for k, v in mine.items()} == {k: v.shape for k, v in ref.items()}


def test_resnet_stem_depends_on_input_size():
    small = build("resnet18", 32, 1)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert small.conv1.in_channels == 1 and isinstance(small.maxpool, nn.Identity)
    large = build("resnet18", 224, 1)
    assert large.conv1.kernel_size == (7, 7) and large.conv1.stride == (2, 2)
    assert large.conv1.in_channels == 1 and isinstance(large.maxpool, nn.MaxPool2d)


def test_cifar_resnet_sizes_match_the_paper():
    # He et al. 2016, Table 6: ResNet-20 0.27 M, ResNet-56 0.85 M parameters.
    assert round(count_params(build("resnet20", 32, 3)) / 1e6, 2) == 0.27
    assert round(count_params(build("resnet56", 32, 3)) / 1e6, 2) == 0.85


def test_vgg_skips_pools_that_would_empty_the_map():
    def pools(side):
        return sum(isinstance(m, nn.MaxPool2d) for m in build("vgg11", side, 1).features)
    assert pools(32) == 5
    assert pools(28) == 4  # 28 → 14 → 7 → 3 → 1, the fifth pool would give 0 px
    with torch.inference_mode():
        assert build("vgg11", 8, 1).eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_custom_cnn_size_is_about_300k_whatever_the_image():
    counts = {side: count_params(build("custom-cnn", side, 3)) for side in (28, 32, 64, 224)}
    assert 250_000 <= counts[32] <= 350_000
    assert len(set(counts.values())) == 1


def test_alexnet_upsizes_small_inputs():
    assert input_requirements(ModelConfig(name="alexnet"), 8, 1) == (1, 16)
    with pytest.raises(ConfigError, match="data.image_size=16"):
        create_model(ModelConfig(name="alexnet"), 10, 1, 8)
    with torch.inference_mode():
        assert build("alexnet", 16, 1).eval()(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    net = build("custom-cnn", 32, 3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        a = net(x)
        b = net.to(memory_format=torch.channels_last)(x.contiguous(
            memory_format=torch.channels_last))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", [{"num_classes": 0}, {"in_channels": 0}, {"image_size": 0}])
def test_nonpositive_sizes_are_config_errors(bad):
    args = {"num_classes": 10, "in_channels": 1, "image_size": 28, **bad}
    with pytest.raises(ConfigError, match=next(iter(bad))):
        create_model(ModelConfig(name="resnet20"), **args)
