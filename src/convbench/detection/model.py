"""torchvision Mask R-CNN / Faster R-CNN around a convbench backbone.

>>> from convbench.detection.config import DetectModelConfig
>>> model = build_detector(DetectModelConfig(backbone="resnet18", min_size=128, max_size=128),
...                        num_classes=3)
>>> type(model).__name__
'MaskRCNN'
"""

from __future__ import annotations

from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from .backbones import build_backbone
from .config import DetectModelConfig


def build_detector(cfg: DetectModelConfig, num_classes: int) -> nn.Module:
    """A detector for ``num_classes`` classes (background is added internally)."""
    backbone = build_backbone(cfg.backbone, cfg.trainable_layers, cfg.pretrained, cfg.norm,
                              cfg.fpn_channels)
    anchors = AnchorGenerator(sizes=tuple((s,) for s in cfg.anchor_sizes),
                              aspect_ratios=(tuple(cfg.aspect_ratios),) * len(cfg.anchor_sizes))
    # A narrower box head than torchvision's 1024: the layout classes are few and CPU time
    # goes mostly into this MLP at 7×7×C inputs.
    box_head = TwoMLPHead(cfg.fpn_channels * 7 * 7, cfg.representation_size)
    box_predictor = FastRCNNPredictor(cfg.representation_size, num_classes + 1)
    kwargs = dict(
        min_size=cfg.min_size, max_size=cfg.max_size, rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_train,
        rpn_post_nms_top_n_train=cfg.rpn_post_nms_train,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_test,
        rpn_post_nms_top_n_test=cfg.rpn_post_nms_test,
        box_head=box_head, box_predictor=box_predictor,
        box_batch_size_per_image=cfg.box_batch_per_image,
        box_detections_per_img=cfg.detections_per_image,
        box_score_thresh=cfg.score_threshold)
    if cfg.arch == "maskrcnn":
        # The mask head works at the FPN width (torchvision fixes 256).
        c = cfg.fpn_channels
        return MaskRCNN(backbone, num_classes=None,
                        mask_head=MaskRCNNHeads(c, [c] * 4, 1),
                        mask_predictor=MaskRCNNPredictor(c, c, num_classes + 1), **kwargs)
    return FasterRCNN(backbone, num_classes=None, **kwargs)
