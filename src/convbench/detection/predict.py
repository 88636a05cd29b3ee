"""Predictions as files: COCO JSON, PAGE-XML and overlay images with fixed class colours.

Colours never change between runs or pages: staff red, lyrics green, drop-capital blue;
other classes take the next colours of a fixed palette in class order.

>>> detector = load_detector("convbench-runs/artifacts/3f9c01ab")            # doctest: +SKIP
>>> ds = predict_images(detector, ["page1.png"], "predictions")                # doctest: +SKIP
>>> class_colour("lyrics", ["staff", "lyrics", "drop-capital"])
(30, 160, 40)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from ..data.folder import IMAGE_EXTS
from ..errors import DataError, WeightsError
from .coco import write_coco
from .config import DetectConfig, build
from .dataset import DetectionDataset, PageRecord, instance_mask
from .evaluate import predict_pages
from .loader import PageTensors, load_image
from .model import build_detector
from .pagexml import DEFAULT_REGION_MAP, write_pagexml

CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "staff": (220, 30, 30), "lyrics": (30, 160, 40), "drop-capital": (30, 70, 220)}
_PALETTE = [(230, 140, 20), (150, 60, 190), (20, 170, 170), (200, 60, 140), (120, 120, 30),
            (90, 90, 90)]


def class_colour(name: str, classes: list[str]) -> tuple[int, int, int]:
    """The fixed colour of a class (see the module docstring)."""
    if name in CLASS_COLOURS:
        return CLASS_COLOURS[name]
    others = [c for c in classes if c not in CLASS_COLOURS]
    return _PALETTE[others.index(name) % len(_PALETTE)] if name in others else _PALETTE[-1]


def overlay(image: Image.Image, page: PageRecord, classes: list[str], alpha: float = 0.35
            ) -> Image.Image:
    """The page with each instance's mask tinted and its box outlined in the class colour."""
    base = image.convert("RGB")
    tint = Image.new("RGB", base.size)
    mask_all = Image.new("L", base.size, 0)
    draw_boxes = []
    for inst in page.instances:
        colour = class_colour(inst.label, classes)
        m = Image.fromarray(instance_mask(inst, page.height, page.width) * 255)
        tint.paste(colour, mask=m)
        mask_all.paste(int(255 * alpha), mask=m)
        draw_boxes.append((inst, colour))
    out = Image.composite(tint, base, mask_all)
    draw = ImageDraw.Draw(out)
    for inst, colour in draw_boxes:
        x, y, w, h = inst.bbox
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=2)
        if inst.score is not None:
            draw.text((x + 2, y + 1), f"{inst.label} {inst.score:.2f}", fill=colour)
    return out


def save_predictions(source: DetectionDataset, predicted: list[PageRecord], out_dir: str | Path,
                     score_threshold: float = 0.5, overlays: int | None = None,
                     region_map: dict[str, str] | None = None) -> dict[str, Path]:
    """Write ``predictions.json`` (COCO, every detection with its score), ``page/*.xml``
    (PAGE-XML, detections with score ≥ ``score_threshold``, confidence in ``Coords@conf``)
    and ``overlays/*.png`` for the first ``overlays`` pages (all when None).

    Image file names stay relative to the source images' folder, ``source.root``.
    """
    out = Path(out_dir)
    ds = DetectionDataset(source.root, source.classes, predicted)
    kept = replace(ds, pages=[replace(p, instances=[i for i in p.instances
                                                    if (i.score or 0) >= score_threshold])
                              for p in predicted])
    paths = {"coco": write_coco(ds, out / "predictions.json")}
    rmap = dict(region_map or DEFAULT_REGION_MAP)
    for c in ds.classes:  # classes without a PAGE type go out as custom-typed text regions
        if c not in rmap.values():
            rmap[f"TextRegion:{c}"] = c
    write_pagexml(kept, out / "page", region_map=rmap)
    paths["pagexml"] = out / "page"
    pages = kept.pages if overlays is None else kept.pages[:overlays]
    if pages:
        (out / "overlays").mkdir(parents=True, exist_ok=True)
        paths["overlays"] = out / "overlays"
    for page in pages:
        image = load_image(source.image_path(page))
        overlay(image, page, ds.classes).save(out / "overlays" / (Path(page.file_name).stem
                                                                  + ".png"))
    return paths


@dataclass
class Detector:
    """A trained detector with what is needed to run it."""

    model: torch.nn.Module
    config: DetectConfig
    classes: list[str]
    device: torch.device


def load_detector(folder: str | Path, device: str = "cpu") -> Detector:
    """Load ``detector.json`` + ``model.safetensors`` written by a detection run."""
    folder = Path(folder)
    meta_path, weights = folder / "detector.json", folder / "model.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise WeightsError(f"{folder} has no detector.json + model.safetensors. Give the "
                           "artifacts folder of a completed detection run (or its run id).")
    meta = json.loads(meta_path.read_text())
    cfg = build(meta["config"], source=str(meta_path))
    # The weights file holds the whole model: no backbone weights need to be read again.
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"pretrained": None})})
    model = build_detector(cfg.model, len(meta["classes"]))
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as err:
        raise WeightsError(f"{weights} does not fit the detector in {meta_path}: "
                           f"{str(err).splitlines()[0]}") from None
    dev = torch.device(device)
    return Detector(model.to(dev).eval(), cfg, list(meta["classes"]), dev)


def predict_images(detector: Detector, images: list[str | Path], out_dir: str | Path,
                   score_threshold: float = 0.5, overlays: bool = True) -> DetectionDataset:
    """Detect regions on image files (a folder stands for the images in it); write
    predictions (see :func:`save_predictions`)."""
    paths = [q for p in images for q in _image_files(Path(p))]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"Image(s) not found: {', '.join(missing[:3])}.")
    parents = {p.resolve().parent for p in paths}
    root = parents.pop() if len(parents) == 1 else Path("/")
    pages = []
    for i, p in enumerate(paths, start=1):
        im = load_image(p)
        name = p.name if root != Path("/") else str(p.resolve())[1:]
        pages.append(PageRecord(i, name, im.width, im.height))
    ds = DetectionDataset(root, detector.classes, pages)
    m = detector.config.model
    data = PageTensors(ds, m.min_size, m.max_size, masks=False)
    predicted = predict_pages(detector.model, data, detector.device)
    save_predictions(ds, predicted, out_dir, score_threshold, None if overlays else 0)
    return replace(ds, pages=predicted)


def _image_files(path: Path) -> list[Path]:
    """``path`` itself, or the images in it (sorted) when it is a folder."""
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.iterdir()
                   if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not found:
        raise DataError(f"Folder {str(path)!r} holds no images "
                        f"({', '.join(sorted(IMAGE_EXTS))}). "
                        "Give image files or a folder of them.")
    return found
