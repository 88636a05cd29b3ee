"""Read and write COCO instance-segmentation JSON (polygons and RLE masks).

>>> ds = read_coco("pages/annotations.json")          # doctest: +SKIP
>>> write_coco(ds, "copy/annotations.json")           # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..errors import DataError
from .dataset import (
    DetectionDataset,
    Instance,
    IssueLog,
    PageRecord,
    check_instance,
    polygon_bbox,
    polygons_area,
    rle_from_json,
    rle_to_coco,
)


def read_coco(path: str | Path, image_root: str | Path | None = None,
              classes: list[str] | None = None, strict: bool = False) -> DetectionDataset:
    """Read a COCO JSON file into a :class:`DetectionDataset`.

    ``image_root`` defaults to the JSON file's folder. ``classes`` keeps (and orders) only
    these category names; annotations of other categories are skipped and counted as
    ``unknown class``. Bad annotations are skipped and counted in ``ds.issues`` (with one
    message each in ``ds.notes``); with ``strict=True`` the first one raises DataError.
    """
    path = Path(path)
    data = _load_json(path)
    log = IssueLog(strict)
    cats = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
    if not cats:
        raise DataError(f"{path}: no 'categories'. A COCO file lists its classes there.")
    names = [cats[k] for k in sorted(cats)]
    if classes is not None:
        missing = [c for c in classes if c not in names]
        if missing:
            raise DataError(f"{path}: classes {missing} are not among its categories {names}.")
        names = list(classes)
    root = Path(image_root) if image_root is not None else path.parent
    pages: dict[int, PageRecord] = {}
    for img in data.get("images", []):
        try:
            page = PageRecord(int(img["id"]), str(img["file_name"]), int(img["width"]),
                              int(img["height"]))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: image entry {img!r} needs id, file_name, width and "
                            "height.") from None
        if not (root / page.file_name).is_file():
            log.add("missing image", f"{path}: image {page.file_name!r} not found under {root}")
            continue
        pages[page.id] = page
    for ann in data.get("annotations", []):
        page = pages.get(ann.get("image_id"))
        if page is None:
            log.add("unknown image", f"annotation {ann.get('id', '?')}: image "
                    f"{ann.get('image_id')!r} is not listed in {path.name} (or its file is "
                    "missing)")
            continue
        # Messages name the page first: that is where a user looks for the region.
        where = f"{page.file_name} annotation {ann.get('id', '?')}"
        label = cats.get(ann.get("category_id"))
        if label is None or label not in names:
            log.add("unknown class", f"{where}: category {ann.get('category_id')!r} is "
                    f"not one of {names}")
            continue
        inst = _instance(ann, label, page, where, log)
        if inst is not None:
            inst = check_instance(inst, page, where, log)
        if inst is not None:
            page.instances.append(inst)
    ds = DetectionDataset(root, names, sorted(pages.values(), key=lambda p: p.id))
    ds.issues, ds.notes = log.counts, log.notes
    return ds


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"COCO file {str(path)!r} not found. Check the path.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a COCO object with images, annotations, categories.")
    return data


def _instance(ann: dict[str, Any], label: str, page: PageRecord, where: str,
              log: IssueLog) -> Instance | None:
    seg = ann.get("segmentation")
    polygons: list[list[float]] = []
    rle = None
    if isinstance(seg, dict):
        try:
            rle = rle_from_json(seg, page.height, page.width)
        except (KeyError, TypeError, ValueError):
            log.add("bad mask", f"{where}: unreadable RLE segmentation")
            return None
        if rle["size"] != [page.height, page.width]:
            log.add("bad mask", f"{where}: RLE size {rle['size']} differs from the page "
                    f"({page.height}×{page.width})")
            return None
    elif isinstance(seg, list):
        polygons = [list(map(float, p)) for p in seg
                    if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            log.add("empty polygon", f"{where}: segmentation has no polygon of 3+ points")
            return None
    elif seg is not None:
        log.add("bad mask", f"{where}: segmentation is neither polygons nor RLE")
        return None
    bbox = ann.get("bbox")
    if bbox is None:
        if polygons:
            bbox = polygon_bbox(polygons)
        elif rle is not None:
            from pycocotools import mask as mask_utils

            bbox = mask_utils.toBbox(rle_to_coco(rle)).tolist()
        else:
            log.add("empty polygon", f"{where}: neither bbox nor segmentation")
            return None
    if len(bbox) != 4:
        log.add("degenerate box", f"{where}: bbox {bbox!r} is not [x, y, width, height]")
        return None
    area = ann.get("area")
    if area is None:
        area = _area(polygons, rle, bbox, page)
    score = ann.get("score")
    return Instance(label, tuple(float(v) for v in bbox), polygons, rle, float(area),
                    bool(ann.get("iscrowd", 0)), None if score is None else float(score))


def _area(polygons: list[list[float]], rle: dict[str, Any] | None, bbox: Any,
          page: PageRecord) -> float:
    if polygons:
        return polygons_area(polygons, page.height, page.width)
    if rle is not None:
        from pycocotools import mask as mask_utils

        return float(mask_utils.area(rle_to_coco(rle)))
    return float(bbox[2] * bbox[3])


def to_coco_dict(ds: DetectionDataset, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The data set as a COCO dict (category id = class index + 1; scores kept if any)."""
    cat_id = {c: i + 1 for i, c in enumerate(ds.classes)}
    images, anns = [], []
    for page in ds.pages:
        images.append({"id": page.id, "file_name": page.file_name, "width": page.width,
                       "height": page.height})
        for inst in page.instances:
            ann: dict[str, Any] = {"id": len(anns) + 1, "image_id": page.id,
                                   "category_id": cat_id[inst.label], "bbox": list(inst.bbox),
                                   "area": inst.area, "iscrowd": int(inst.iscrowd)}
            if inst.rle is not None:
                ann["segmentation"] = dict(inst.rle)
            elif inst.polygons:
                ann["segmentation"] = [list(p) for p in inst.polygons]
            if inst.score is not None:
                ann["score"] = inst.score
            anns.append(ann)
    return {"info": info or {"description": "written by convbench"}, "images": images,
            "annotations": anns,
            "categories": [{"id": cat_id[c], "name": c, "supercategory": "region"}
                           for c in ds.classes]}


def write_coco(ds: DetectionDataset, path: str | Path, info: dict[str, Any] | None = None
               ) -> Path:
    """Write the data set as COCO JSON (atomically); image file names stay relative.
    ``info`` replaces the default COCO ``info`` block.

    >>> write_coco(ds, "out/annotations.json")   # doctest: +SKIP
    PosixPath('out/annotations.json')
    """
    return write_text(path, json.dumps(to_coco_dict(ds, info), separators=(",", ":")))
