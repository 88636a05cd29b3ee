"""Every backbone and stem builds, feeds an FPN and trains Mask R-CNN for two iterations."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from convbench.detection.backbones import (
    BACKBONES,
    build_backbone,
    build_body,
    load_weights,
    resnet_body,
)
from convbench.detection.coco import read_coco
from convbench.detection.config import DetectModelConfig
from convbench.detection.loader import PageTensors
from convbench.detection.model import build_detector
from convbench.errors import ConfigError, UnknownNameError, WeightsError

TRAINED = ["resnet18", "resnet18-deep", "resnet18-parallel", "resnet31", "resnet34",
           "resnet50", "resnet50b", "resnet50c", "resnet101", "vovnet19-lite", "vovnet19",
           "vovnet39", "vovnet57", "vovnet99", "mobilenet_v3_large", "mobilenet_v3_small",
           "timm/resnet18"]


def _convs(module: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.Conv2d) for m in module.modules())


@pytest.mark.parametrize("name", TRAINED)
def test_backbone_trains_two_iterations_of_mask_rcnn(name, pages):
    # 64-px pages keep 17 backbones × 2 iterations within a minute or two on 2 cores.
    cfg = DetectModelConfig(backbone=name, min_size=48, max_size=64, fpn_channels=16,
                            representation_size=32, box_batch_per_image=16,
                            rpn_pre_nms_train=200, rpn_post_nms_train=50)
    torch.manual_seed(0)
    model = build_detector(cfg, num_classes=3)
    data = PageTensors(read_coco(pages), cfg.min_size, cfg.max_size, masks=True)
    feats = model.backbone(torch.zeros(1, 3, 128, 96))
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [(32, 24), (16, 12), (8, 6),
                                                             (4, 3), (2, 2)]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.005,
                          momentum=0.9)
    before = {k: v.clone() for k, v in model.backbone.body.state_dict().items()
              if v.dtype.is_floating_point}
    model.train()
    for it in range(2):
        images, targets = data.batch([it])
        losses = model(images, targets)
        assert set(losses) >= {"loss_classifier", "loss_box_reg", "loss_mask",
                               "loss_objectness", "loss_rpn_box_reg"}
        loss = sum(losses.values())
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.backbone.body.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the body learned


def test_study_conv_counts_of_resnet_variants():
    # Table 3.1 of the study: ResNet-31 = stem + 10 bottlenecks = 31 convolutions; the
    # 50b/50c stems add 2 and 3 convolutions to ResNet-50's 49 (its 50th layer is the
    # classifier). Each stage's first block also has a 1×1 projection shortcut: +4.
    assert _convs(resnet_body(31)) == 31 + 4
    assert _convs(resnet_body(50)) == 49 + 4
    assert _convs(resnet_body(50, "deep")) == 49 + 2 + 4
    assert _convs(resnet_body(50, "parallel")) == 49 + 3 + 4


def test_vovnet_stage_layouts_follow_the_study_table():
    body = build_body("vovnet57")
    net = body.net
    modules = [sum(1 for m in getattr(net, f"stage{i}") if m.__class__.__name__ == "OSAModule")
               for i in range(2, 6)]
    assert modules == [1, 1, 4, 3]
    assert len(net.stage2[0].layers) == 5 and body.channels == [256, 512, 768, 1024]
    assert len(build_body("vovnet19").net.stage3[1].layers) == 3
    assert [sum(1 for m in getattr(build_body("vovnet99").net, f"stage{i}")
                if m.__class__.__name__ == "OSAModule") for i in range(2, 6)] == [1, 3, 8, 3]


def test_aliases_name_the_same_builder():
    assert BACKBONES.get("resnet50b") is BACKBONES.get("resnet50-deep")
    assert BACKBONES.get("resnet50c") is BACKBONES.get("resnet50-parallel")


@pytest.mark.parametrize("name", ["resnet18", "vovnet19-lite", "mobilenet_v3_small",
                                  "timm/resnet18"])
def test_trainable_layers_freeze_the_early_units(name):
    fpn = build_backbone(name, trainable_layers=2)
    body = fpn.body
    frozen = [n for unit in body.units[:3] for n in unit]
    live = [n for unit in body.units[3:] for n in unit]
    params = lambda names: [p for n in names for p in body.net.get_submodule(n).parameters()]  # noqa: E731
    assert params(frozen) and not any(p.requires_grad for p in params(frozen))
    assert params(live) and all(p.requires_grad for p in params(live))
    fpn.train()
    bns = [m for n in frozen for m in body.net.get_submodule(n).modules()
           if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)  # frozen statistics stay fixed
    with pytest.raises(ConfigError, match="trainable_layers"):
        body.freeze(6)


def test_pretrained_weights_load_from_safetensors_and_torch_files(tmp_path):
    source = build_body("resnet18").net
    # A torchvision-style classification checkpoint: extra fc, nested under "state_dict".
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    state["module.fc.weight"] = torch.zeros(10, 512)
    torch.save({"state_dict": state}, tmp_path / "r18.pth")
    save_file({k: v.contiguous() for k, v in source.state_dict().items()},
              str(tmp_path / "r18.safetensors"))
    for path in (tmp_path / "r18.pth", tmp_path / "r18.safetensors"):
        fpn = build_backbone("resnet18", pretrained=path)
        got = fpn.body.net.state_dict()
        assert all(torch.equal(got[k], v) for k, v in source.state_dict().items())
    frozen = build_backbone("resnet18", pretrained=tmp_path / "r18.safetensors", norm="frozen")
    bn = frozen.body.net.bn1
    assert type(bn).__name__ == "FrozenBatchNorm2d"
    assert torch.equal(bn.running_mean, source.bn1.running_mean)


def test_weights_for_another_backbone_are_refused(tmp_path):
    save_file({k: v.contiguous() for k, v in build_body("resnet18").net.state_dict().items()},
              str(tmp_path / "r18.safetensors"))
    with pytest.raises(WeightsError, match=r"only \d+ of \d+ backbone tensors found"):
        load_weights(build_body("resnet34").net, tmp_path / "r18.safetensors")
    with pytest.raises(WeightsError, match="do not fit"):
        load_weights(build_body("resnet50").net, tmp_path / "r18.safetensors")
    with pytest.raises(WeightsError, match="tensors found|do not fit"):
        load_weights(build_body("vovnet19-lite").net, tmp_path / "r18.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="unreadable"):
        load_weights(build_body("resnet18").net, tmp_path / "junk.pt")
    with pytest.raises(WeightsError, match="not found"):
        load_weights(build_body("resnet18").net, tmp_path / "nope.safetensors")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_published_weights_come_from_the_torch_hub_cache(name, tmp_path, monkeypatch):
    # A torchvision classification network saved where torch hub caches its ImageNet file:
    # pretrained=True must find it there (no network) and carry every body tensor over.
    import torchvision
    from torchvision.models import get_weight

    from convbench.detection.backbones import PUBLISHED

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    reference = getattr(torchvision.models, name)(weights=None)
    cache = tmp_path / "hub" / "checkpoints" / get_weight(PUBLISHED[name]).url.split("/")[-1]
    cache.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cache)
    body = build_backbone(name, pretrained=True).body.net
    wanted = reference.state_dict()
    prefix = "features." if name.startswith("mobilenet") else ""
    got = body.state_dict()
    assert got and all(torch.equal(v, wanted[prefix + k]) for k, v in got.items())


def test_backbones_without_published_weights_say_what_to_do():
    with pytest.raises(WeightsError, match="weights file path"):
        build_backbone("vovnet39", pretrained=True)


def test_unknown_backbones_suggest_close_names():
    with pytest.raises(UnknownNameError, match="resnet50") as info:
        build_body("resnet05")
    assert "convbench detect backbones" in str(info.value)
    with pytest.raises(UnknownNameError, match="timm model 'resnet1800'"):
        build_body("timm/resnet1800")
    with pytest.raises(ConfigError, match="gn"):
        build_body("timm/resnet18", norm="gn")
