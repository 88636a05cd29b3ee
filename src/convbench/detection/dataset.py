"""The in-memory layout data set shared by the COCO and PAGE-XML readers and writers.

A :class:`DetectionDataset` is a list of pages (image file + size) with their region
instances. Each instance has a class *name* (not an id, so formats with different id schemes
meet), a box, and a mask given as polygons or as a COCO run-length encoding (RLE).

>>> page = PageRecord(id=1, file_name="p.png", width=100, height=80, instances=[
...     Instance("staff", (10.0, 10.0, 50.0, 20.0), polygons=[[10, 10, 60, 10, 60, 30, 10, 30]],
...              area=1000.0)])
>>> ds = DetectionDataset(Path("."), ["staff"], [page])
>>> ds.count_instances()
{'staff': 1}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import DataError

Box = tuple[float, float, float, float]  # x, y, width, height (COCO convention), pixels


@dataclass
class Instance:
    """One annotated (or predicted) region."""

    label: str
    bbox: Box
    polygons: list[list[float]] = field(default_factory=list)  # flat [x1, y1, x2, y2, …] each
    rle: dict[str, Any] | None = None  # compressed COCO RLE: {"size": [h, w], "counts": str}
    area: float = 0.0
    iscrowd: bool = False
    score: float | None = None  # predictions only

    @property
    def has_mask(self) -> bool:
        return bool(self.polygons) or self.rle is not None


@dataclass
class PageRecord:
    """One page image and its regions; ``file_name`` is relative to the data set root."""

    id: int
    file_name: str
    width: int
    height: int
    instances: list[Instance] = field(default_factory=list)


@dataclass
class DetectionDataset:
    """Pages with region instances, class names in a fixed order (category id = index + 1)."""

    root: Path
    classes: list[str]
    pages: list[PageRecord]
    issues: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def image_path(self, page: PageRecord) -> Path:
        """Where the image of ``page`` lives on disk."""
        return self.root / page.file_name

    def subset(self, page_ids: list[int]) -> DetectionDataset:
        """The pages with these ids, in this order (issues and notes are kept)."""
        by_id = {p.id: p for p in self.pages}
        return replace(self, pages=[by_id[i] for i in page_ids])

    def count_instances(self) -> dict[str, int]:
        """Instances per class, in class order."""
        counts = Counter(i.label for p in self.pages for i in p.instances)
        return {c: counts[c] for c in self.classes}

    def issue_summary(self) -> str:
        """One line: what was skipped or fixed while reading, e.g. ``3 unknown class``."""
        if not self.issues:
            return "no annotation problems"
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.issues.items()))

    def issue_report(self, log: str | Path | None = None, shown: int = 3) -> list[str]:
        """A few lines for the terminal: what was skipped or fixed, then the first
        ``shown`` messages; ``log`` is the file that holds them all (empty: no problems).

        >>> ds = DetectionDataset(Path("."), [], [], Counter({"unknown class": 2}),
        ...                       ["a.png annotation 4: category 9 …", "a.png annotation 5: …"])
        >>> print("\\n".join(ds.issue_report(shown=1)))
        skipped 2 annotations (2 unknown class); first 1 of 2 messages:
          a.png annotation 4: category 9 …
        """
        if not self.issues:
            return []
        skipped = {k: n for k, n in sorted(self.issues.items()) if k not in (_FIXED, _NO_IMAGE)}
        what = []
        if skipped:
            detail = ", ".join(f"{n} {kind}" for kind, n in skipped.items())
            what.append(f"{_count(sum(skipped.values()), 'annotation')} ({detail})")
        if self.issues.get(_NO_IMAGE):
            what.append(f"{_count(self.issues[_NO_IMAGE], 'page')} ({_NO_IMAGE})")
        parts = ["skipped " + " and ".join(what)] if what else []
        if self.issues.get(_FIXED):
            parts.append(f"{_count(self.issues[_FIXED], 'box', 'es')} {_FIXED}")
        where = (f"all {len(self.notes)} messages in {log}" if log else
                 f"first {min(shown, len(self.notes))} of {len(self.notes)} messages")
        return [f"{'; '.join(parts)}; {where}:", *(f"  {n}" for n in self.notes[:shown])]

    def issue_metrics(self, kept: int = 10) -> dict[str, Any]:
        """What a run or an evaluation stores about bad annotations: counts, first messages."""
        return {"skipped_annotations": dict(self.issues),
                "annotation_notes": self.notes[:kept]}


# Problems that are not skipped annotations: a fixed box, and a page without its image.
_FIXED, _NO_IMAGE = "clipped to page", "missing image"


def _count(n: int, word: str, plural: str = "s") -> str:
    return f"{n} {word}{'' if n == 1 else plural}"


class IssueLog:
    """Counts bad annotations and keeps every message (a run's log lists them all); in
    strict mode the first one raises :class:`DataError`.

    >>> log = IssueLog(strict=False)
    >>> log.add("empty polygon", "p.png annotation 3: segmentation has no polygon")
    >>> dict(log.counts)
    {'empty polygon': 1}
    """

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.counts: Counter[str] = Counter()
        self.notes: list[str] = []

    def add(self, kind: str, message: str) -> None:
        if self.strict:
            raise DataError(f"{message}. Fix the annotation, or read without strict mode to "
                            "skip such annotations and get a count.")
        self.counts[kind] += 1
        self.notes.append(message)


def polygon_bbox(polygons: list[list[float]]) -> Box:
    """The box around flat polygons.

    >>> polygon_bbox([[1, 2, 5, 2, 5, 9]])
    (1.0, 2.0, 4.0, 7.0)
    """
    xs = [v for p in polygons for v in p[0::2]]
    ys = [v for p in polygons for v in p[1::2]]
    return (float(min(xs)), float(min(ys)), float(max(xs) - min(xs)), float(max(ys) - min(ys)))


def polygons_area(polygons: list[list[float]], height: int, width: int) -> float:
    """Pixel area of the union of polygons, as COCO computes it (rasterised)."""
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    return float(mask_utils.area(mask_utils.merge(rles)))


def rle_from_json(seg: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """Normalise a COCO RLE (compressed or uncompressed counts) to compressed, str counts."""
    if isinstance(seg.get("counts"), list):
        seg = mask_utils.frPyObjects(seg, *seg["size"])
    counts = seg["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(seg["size"][0]), int(seg["size"][1])], "counts": counts}


def rle_to_coco(rle: dict[str, Any]) -> dict[str, Any]:
    """A compressed RLE as pycocotools wants it (bytes counts)."""
    counts = rle["counts"]
    return {"size": list(rle["size"]),
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a binary H×W mask as a compressed RLE with str counts."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": rle["counts"].decode("ascii")}


def instance_mask(inst: Instance, height: int, width: int) -> np.ndarray:
    """The instance as a uint8 H×W mask (box-only instances become filled boxes)."""
    if inst.rle is not None:
        return mask_utils.decode(rle_to_coco(inst.rle)).astype(np.uint8)
    if inst.polygons:
        rles = mask_utils.frPyObjects([list(map(float, p)) for p in inst.polygons], height, width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8)
    x, y, w, h = inst.bbox
    mask = np.zeros((height, width), np.uint8)
    mask[int(y): int(np.ceil(y + h)), int(x): int(np.ceil(x + w))] = 1
    return mask


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[list[float]]:
    """Outer contours of a binary mask as flat polygons, largest first.

    Contours come from ``contourpy`` at level 0.5, so they run along pixel borders' midpoints.

    >>> m = np.zeros((10, 10), np.uint8); m[2:6, 3:8] = 1
    >>> poly = mask_to_polygons(m)[0]
    >>> polygon_bbox([poly])
    (2.5, 1.5, 5.0, 4.0)
    """
    import contourpy

    # Pad so regions touching the border still give closed contours.
    padded = np.pad(mask.astype(np.float64), 1)
    gen = contourpy.contour_generator(z=padded, line_type=contourpy.LineType.Separate)
    polys = []
    for line in gen.lines(0.5):
        pts = _corners(np.asarray(line)[:-1] - 1.0)  # drop the closing point, undo the padding
        if len(pts) < min_points:
            continue
        polys.append((_shoelace(pts), [round(float(v), 2) for v in pts.reshape(-1)]))
    polys.sort(key=lambda t: -t[0])
    return [p for _, p in polys]


def _corners(pts: np.ndarray) -> np.ndarray:
    """The closed polygon ``pts`` without repeated points and without points in the middle of
    a straight run: the same outline, with a point per corner instead of one per pixel edge
    (a 100 px region edge is one segment, not a hundred, in the PAGE-XML a tool reads).

    >>> _corners(np.array([[0, 0], [1, 0], [2, 0], [2, 0], [2, 1], [2, 2], [0, 2]])).tolist()
    [[0, 0], [2, 0], [2, 2], [0, 2]]
    """
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
    pts = pts[keep] if keep.any() else pts[:1]
    if len(pts) < 3:
        return pts
    before, after = pts - np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0) - pts
    cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    turning = np.abs(cross) > 1e-9
    return pts[turning] if turning.sum() >= 3 else pts


def _shoelace(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def clip_instance(inst: Instance, width: int, height: int) -> Instance | None:
    """Clip an instance to the page; ``None`` when nothing of it is on the page."""
    x, y, w, h = inst.bbox
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 <= x0 or y1 <= y0:
        return None
    polys = [[float(min(max(v, 0.0), width if i % 2 == 0 else height)) for i, v in enumerate(p)]
             for p in inst.polygons]
    return replace(inst, bbox=(x0, y0, x1 - x0, y1 - y0), polygons=polys)


def check_instance(inst: Instance, page: PageRecord, where: str, log: IssueLog) -> Instance | None:
    """Validate one instance against its page; fix what is safe, skip what is not."""
    x, y, w, h = inst.bbox
    if not (w > 0 and h > 0) or not all(np.isfinite(inst.bbox)):
        log.add("degenerate box", f"{where}: box {list(inst.bbox)} has no area")
        return None
    if x + w <= 0 or y + h <= 0 or x >= page.width or y >= page.height:
        log.add("box outside page", f"{where}: box {list(inst.bbox)} lies outside the "
                f"{page.width}×{page.height} page")
        return None
    if x < 0 or y < 0 or x + w > page.width or y + h > page.height:
        log.add("clipped to page", f"{where}: box {list(inst.bbox)} crosses the page border")
        inst = clip_instance(inst, page.width, page.height)
    return inst


def split_pages(ds: DetectionDataset, test_fraction: float, seed: int
                ) -> tuple[DetectionDataset, DetectionDataset]:
    """A random train/test split of pages, fixed by ``seed``.

    >>> pages = [PageRecord(i, f"{i}.png", 8, 8) for i in range(10)]
    >>> tr, te = split_pages(DetectionDataset(Path("."), [], pages), 0.3, seed=1)
    >>> len(tr.pages), len(te.pages)
    (7, 3)
    """
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    ids = sorted(p.id for p in ds.pages)
    if len(ids) < 2:
        raise DataError(f"Need at least 2 pages to split into train and test, got {len(ids)}.")
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = min(max(1, round(test_fraction * len(ids))), len(ids) - 1)
    test = sorted(ids[i] for i in order[:n_test])
    train = sorted(ids[i] for i in order[n_test:])
    return ds.subset(train), ds.subset(test)
