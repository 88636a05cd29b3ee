"""Document-layout detection and instance segmentation (the study ``000``).

Mask R-CNN / Faster R-CNN (torchvision) with pluggable backbones (ResNet 18–101 with three
stems, VoVNet, MobileNetV3, any timm model), COCO and PAGE-XML data, synthetic manuscript
pages, COCO AP evaluation, predictions and comparisons with cost.

>>> from convbench.detection import BACKBONES
>>> "vovnet39" in BACKBONES
True
"""

from .backbones import BACKBONES, build_backbone, list_backbones, load_weights
from .coco import read_coco, write_coco
from .compare import compare_detectors, write_detect_report
from .config import DetectConfig, budget
from .dataset import DetectionDataset, Instance, PageRecord, split_pages
from .evaluate import coco_metrics, evaluate_dataset
from .model import build_detector
from .pagexml import DEFAULT_REGION_MAP, read_pagexml, write_pagexml
from .predict import load_detector, predict_images, save_predictions
from .synth import synthesize
from .train import train_detector

__all__ = [
    "BACKBONES", "DEFAULT_REGION_MAP", "DetectConfig", "DetectionDataset", "Instance",
    "PageRecord", "budget", "build_backbone", "build_detector", "coco_metrics",
    "compare_detectors", "evaluate_dataset", "list_backbones", "load_detector", "load_weights",
    "predict_images", "read_coco", "read_pagexml", "save_predictions", "split_pages",
    "synthesize", "train_detector", "write_coco", "write_detect_report", "write_pagexml",
]
