"""Document-layout detection and instance segmentation (the study ``000``).

Mask R-CNN / Faster R-CNN (torchvision) with pluggable backbones (ResNet 18–101 with three
stems, VoVNet, MobileNetV3, any timm model), COCO and PAGE-XML data, synthetic manuscript
pages, COCO AP evaluation, predictions and comparisons with cost.

Names are imported on first use: the main CLI mounts ``convbench detect`` and must not pay
for torchvision's detection models on every ``convbench`` command.

>>> from convbench.detection import BACKBONES
>>> "vovnet39" in BACKBONES
True
"""

from importlib import import_module

_WHERE = {
    "BACKBONES": "backbones", "build_backbone": "backbones", "list_backbones": "backbones",
    "load_weights": "backbones",
    "read_coco": "coco", "write_coco": "coco",
    "compare_detectors": "compare", "write_detect_report": "compare",
    "DetectConfig": "config", "budget": "config",
    "DetectionDataset": "dataset", "Instance": "dataset", "PageRecord": "dataset",
    "split_pages": "dataset",
    "coco_metrics": "evaluate", "evaluate_dataset": "evaluate",
    "build_detector": "model",
    "DEFAULT_REGION_MAP": "pagexml", "read_pagexml": "pagexml", "write_pagexml": "pagexml",
    "load_detector": "predict", "predict_images": "predict", "save_predictions": "predict",
    "synthesize": "synth",
    "train_detector": "train",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
