"""Inference on pages and COCO evaluation of boxes and masks.

The COCO evaluation runs on `faster-coco-eval` (the ``fast-eval`` extra: the same algorithm
with the matching and accumulation in C++, several times faster on many pages) when it is
installed, else on pycocotools; both give the same APs (a test checks it to 1e-6).
``coco_eval_backend`` in the metrics names the backend and its version.

Metrics are fractions (0…1): ``box_AP, box_AP50, box_AP75, box_APs, box_APm, box_APl`` and
the same with ``mask_``; ``box_AP_per_class`` / ``mask_AP_per_class`` map class → AP. A size
bucket with no ground truth (e.g. no small regions) gives ``None``, not COCO's −1.

>>> metrics = coco_metrics(gt_dataset, predicted_pages)   # doctest: +SKIP
>>> metrics["box_AP50"]                                   # doctest: +SKIP
0.93
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import import_module
from importlib.metadata import version
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .coco import to_coco_dict
from .dataset import DetectionDataset, Instance, PageRecord, mask_to_rle, rle_to_coco
from .loader import PageTensors

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# Evaluation backends, fastest first: name → (module of COCO, module and name of the evaluator).
BACKENDS = {"faster-coco-eval": ("faster_coco_eval", "faster_coco_eval", "COCOeval_faster"),
            "pycocotools": ("pycocotools.coco", "pycocotools.cocoeval", "COCOeval")}


def coco_backend(name: str = "auto") -> str:
    """The COCO evaluation backend to use: ``auto`` is the fastest one installed.

    >>> coco_backend("pycocotools")
    'pycocotools'
    """
    if name != "auto" and name not in BACKENDS:
        raise ConfigError(f"Unknown COCO evaluation backend {name!r}; use auto, "
                          f"{', '.join(BACKENDS)}.")
    for candidate in BACKENDS if name == "auto" else (name,):
        try:
            import_module(BACKENDS[candidate][0])
            return candidate
        except ImportError:
            if name != "auto":
                raise ConfigError(f"COCO evaluation backend {name} is not installed: "
                                  f"pip install {name} (or use auto).") from None
    raise ConfigError("No COCO evaluation backend: pip install pycocotools.")


@torch.inference_mode()
def predict_pages(model: torch.nn.Module, data: PageTensors, device: torch.device,
                  batch_size: int = 2, mask_threshold: float = 0.5,
                  on_batch: Callable[[int], None] | None = None) -> list[PageRecord]:
    """Run the model on every page; predictions come back in page (not model) coordinates.

    Each returned page carries scored instances with boxes and, for Mask R-CNN, RLE masks
    at full page size. ``on_batch(n_done)`` reports progress.
    """
    model.eval()
    out_pages = []
    for start in range(0, len(data), batch_size):
        idx = list(range(start, min(start + batch_size, len(data))))
        images, _ = data.batch(idx)
        outputs = model([im.to(device) for im in images])
        for i, out in zip(idx, outputs, strict=True):
            item = data.items[i]
            out_pages.append(replace(item.page, instances=_instances(
                out, item.page, item.scale_x, item.scale_y, data.classes, mask_threshold)))
        if on_batch is not None:
            on_batch(len(out_pages))
    return out_pages


def evaluate_dataset(model: torch.nn.Module, ds: DetectionDataset, min_size: int, max_size: int,
                     device: torch.device, masks: bool, batch_size: int = 2,
                     on_batch: Callable[[int], None] | None = None
                     ) -> tuple[dict[str, Any], list[PageRecord]]:
    """Predict every page of ``ds`` and score the predictions; returns (metrics, pages).

    ``masks`` adds mask AP (Mask R-CNN); ``eval_time_s`` and ``eval_images_per_s`` time the
    inference alone.
    """
    data = PageTensors(ds, min_size, max_size, masks=False)
    t0 = time.perf_counter()
    predicted = predict_pages(model, data, device, batch_size, on_batch=on_batch)
    seconds = time.perf_counter() - t0
    metrics = coco_metrics(ds, predicted, ("bbox", "segm") if masks else ("bbox",))
    metrics["eval_time_s"] = seconds
    metrics["eval_images_per_s"] = len(ds.pages) / seconds if seconds > 0 else None
    return metrics, predicted


def _instances(out: dict[str, torch.Tensor], page: PageRecord, sx: float, sy: float,
               classes: list[str], threshold: float) -> list[Instance]:
    boxes = out["boxes"].cpu().double()
    boxes[:, [0, 2]] /= sx
    boxes[:, [1, 3]] /= sy
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, page.width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, page.height)
    masks = out.get("masks")
    found = []
    for k in range(len(boxes)):
        x1, y1, x2, y2 = boxes[k].tolist()
        rle, area = None, (x2 - x1) * (y2 - y1)
        if masks is not None:
            # Upsample one mask at a time: full-page masks for all detections at once would
            # need detections × H × W floats.
            prob = F.interpolate(masks[k: k + 1].float().cpu(), size=(page.height, page.width),
                                 mode="bilinear", align_corners=False)[0, 0]
            binary = (prob >= threshold).numpy()
            rle, area = mask_to_rle(binary), float(binary.sum())
        found.append(Instance(classes[int(out["labels"][k]) - 1], (x1, y1, x2 - x1, y2 - y1),
                              rle=rle, area=area, score=float(out["scores"][k])))
    return found


def _quiet_coco(coco_cls: type, data: dict[str, Any]) -> Any:
    coco = coco_cls()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_metrics(gt: DetectionDataset, predicted: list[PageRecord],
                 iou_types: tuple[str, ...] = ("bbox", "segm"), backend: str = "auto"
                 ) -> dict[str, Any]:
    """COCO AP metrics of ``predicted`` pages against the ground truth ``gt``.

    ``iou_types`` holds ``bbox`` and/or ``segm``; ground-truth instances without masks are
    scored on their boxes for ``segm`` (as filled rectangles). ``backend`` is ``auto``
    (faster-coco-eval if installed, else pycocotools) or one of :data:`BACKENDS`; the
    metrics name it in ``coco_eval_backend``.
    """
    backend = coco_backend(backend)
    coco_module, eval_module, eval_name = BACKENDS[backend]
    coco_cls = import_module(coco_module).COCO
    evaluator = getattr(import_module(eval_module), eval_name)
    gt_dict = to_coco_dict(gt)
    for ann, inst in zip(gt_dict["annotations"],
                         (i for p in gt.pages for i in p.instances), strict=True):
        if "segmentation" not in ann:
            x, y, w, h = inst.bbox
            ann["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        elif isinstance(ann["segmentation"], dict):
            ann["segmentation"] = rle_to_coco(ann["segmentation"])
    cat_id = {c: i + 1 for i, c in enumerate(gt.classes)}
    results = []
    for page in predicted:
        for inst in page.instances:
            res = {"image_id": page.id, "category_id": cat_id[inst.label],
                   "bbox": list(inst.bbox), "score": inst.score if inst.score is not None else 1.0}
            if inst.rle is not None:
                res["segmentation"] = rle_to_coco(inst.rle)
            results.append(res)
    metrics: dict[str, Any] = {"coco_eval_backend": f"{backend} {version(backend)}"}
    coco_gt = _quiet_coco(coco_cls, gt_dict)
    for iou_type in iou_types:
        prefix = "box" if iou_type == "bbox" else "mask"
        usable = [r for r in results if iou_type == "bbox" or "segmentation" in r]
        if not usable:
            metrics.update({f"{prefix}_{n}": 0.0 for n in STAT_NAMES})
            metrics[f"{prefix}_AP_per_class"] = {c: 0.0 for c in gt.classes}
            metrics[f"{prefix}_AP50_per_class"] = {c: 0.0 for c in gt.classes}
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes([dict(r) for r in usable])
            ev = evaluator(coco_gt, coco_dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        for name, value in zip(STAT_NAMES, ev.stats[:6], strict=True):
            metrics[f"{prefix}_{name}"] = None if value < 0 else float(value)
        metrics[f"{prefix}_AP_per_class"] = _per_class(ev, gt.classes, cat_id, iou=None)
        metrics[f"{prefix}_AP50_per_class"] = _per_class(ev, gt.classes, cat_id, iou=0)
    return metrics


def _per_class(ev: Any, classes: list[str], cat_id: dict[str, int],
               iou: int | None) -> dict[str, float | None]:
    precision = ev.eval["precision"]  # [IoU T, recall R, class K, area A, max dets M]
    out: dict[str, float | None] = {}
    for name in classes:
        k = ev.params.catIds.index(cat_id[name])
        p = precision[:, :, k, 0, -1] if iou is None else precision[iou, :, k, 0, -1]
        valid = p[p > -1]
        out[name] = float(np.mean(valid)) if valid.size else None
    return out
