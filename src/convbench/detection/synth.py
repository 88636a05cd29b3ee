"""Synthetic music-manuscript pages with layout annotations (COCO JSON + PAGE-XML).

Each page has aged paper, systems of a five-line staff (class ``staff``) with square notes,
a line of handwriting-like lyrics under it (``lyrics``), now and then a decorated initial
(``drop-capital``), unlabelled distractors (margin notes, bleed-through, stains), noise, and
a slight rotation. Drawing is numpy + Pillow only, about 20 ms a page.

>>> import tempfile
>>> ann = synthesize(tempfile.mkdtemp() + "/synth-pages", pages=2, size=128, seed=0)
>>> ann.name, sorted(p.name for p in ann.parent.glob("*.png"))
('annotations.json', ['page_0000.png', 'page_0001.png'])
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import DataError
from .coco import write_coco
from .dataset import DetectionDataset, Instance, PageRecord, polygon_bbox, polygons_area
from .pagexml import write_pagexml

CLASSES = ["staff", "lyrics", "drop-capital"]
ASPECT = 0.75  # page width / height, close to a manuscript folio
_CREATED = "2024-01-01T00:00:00"  # fixed Metadata date: same seed, same bytes
# The COCO info block marks a folder as synthesize() output, which a new run may replace.
SYNTH_INFO = {"description": "convbench synthetic pages"}
_PNG, _XML = re.compile(r"page_\d{4,}\.png"), re.compile(r"page_\d{4,}\.xml")


def synthesize(out_dir: str | Path, pages: int = 60, size: int = 448, seed: int = 0) -> Path:
    """Draw ``pages`` pages of height ``size`` px into ``out_dir``; return the COCO JSON path.

    Writes ``page_0000.png``…, ``annotations.json`` (COCO, polygon masks) and
    ``page/page_0000.xml``… (PAGE-XML). The same ``seed`` gives the same files.

    >>> synthesize("pages", pages=2, size=256, seed=1).is_file()   # doctest: +SKIP
    True
    """
    if pages < 1 or size < 64:
        raise ValueError("synthesize needs pages >= 1 and size >= 64 px")
    out = Path(out_dir)
    _clear_output(out)
    records = []
    for i in range(pages):
        rng = np.random.default_rng([seed, i])
        image, instances = draw_page(rng, size)
        name = f"page_{i:04d}.png"
        image.save(out / name)
        records.append(PageRecord(i + 1, name, image.width, image.height, instances))
    ds = DetectionDataset(out, list(CLASSES), records)
    write_pagexml(ds, out / "page", created=_CREATED)
    return write_coco(ds, out / "annotations.json", info=SYNTH_INFO)


def _clear_output(out: Path) -> None:
    """Create ``out``, or empty it of an earlier synthesize() run, whose pages beyond the new
    count would otherwise read as extra pages. Any other content is refused, not deleted."""
    if out.exists() and not out.is_dir():
        raise DataError(f"Cannot write pages into {str(out)!r}: it is a file. Give a new or "
                        "empty folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way higher up, no permission, …
        raise DataError(f"Cannot create the folder {str(out)!r}: {err.strerror}.") from None
    ann, page_dir = out / "annotations.json", out / "page"
    in_page = list(page_dir.iterdir()) if page_dir.is_dir() else []
    pngs = [p for p in out.iterdir() if _PNG.fullmatch(p.name) and p.is_file()]
    xmls = [p for p in in_page if _XML.fullmatch(p.name) and p.is_file()]
    others = [p for p in [*out.iterdir(), *in_page] if p not in (ann, *pngs, *xmls)
              and not (p == page_dir and p.is_dir())]
    if not (others or pngs or xmls or ann.exists()):
        return
    if others or not _is_synth_output(ann):
        example = (others or pngs or xmls or [ann])[0]
        raise DataError(f"{str(out)!r} is not empty and not the output of a finished "
                        f"`convbench detect synth` (e.g. {str(example)!r}). Give a new or "
                        "empty folder.")
    # The marker goes last, so a clean-up cut short can still be redone.
    for path in [*pngs, *xmls, ann]:
        path.unlink()


def _is_synth_output(ann: Path) -> bool:
    try:
        return json.loads(ann.read_text()).get("info") == SYNTH_INFO
    except (OSError, ValueError, AttributeError):
        return False


def draw_page(rng: np.random.Generator, size: int) -> tuple[Image.Image, list[Instance]]:
    """One page image and its instances (integer polygon corners, in page coordinates)."""
    height, width = size, int(round(size * ASPECT / 2)) * 2
    paper = _paper(rng, width, height)
    img = Image.fromarray(paper)
    draw = ImageDraw.Draw(img)
    ink = tuple(int(v) for v in rng.integers([25, 15, 5], [70, 50, 35]))
    _bleed_through(draw, rng, width, height)
    regions = _layout(draw, rng, width, height, ink)
    _margin_notes(draw, rng, width, height, ink)
    angle = float(rng.uniform(-1.5, 1.5))
    fill = tuple(int(v) for v in paper[height // 2, 2])
    img = img.rotate(angle, resample=Image.BICUBIC, fillcolor=fill)
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.7))))
    arr = np.asarray(img, np.float32) + rng.normal(0, rng.uniform(2, 6), (height, width, 1))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    instances = []
    for label, box in regions:
        poly = _rotate_box(box, angle, width, height)
        instances.append(Instance(label, polygon_bbox([poly]), [poly],
                                  area=polygons_area([poly], height, width)))
    return img, instances


def _paper(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    base = np.array([228, 214, 180], np.float32) + rng.uniform(-12, 12, 3)
    low = Image.fromarray(rng.uniform(0, 255, (6, 5)).astype(np.uint8)).resize(
        (width, height), Image.BICUBIC)
    shade = (np.asarray(low, np.float32) - 128) / 128 * rng.uniform(6, 14)
    arr = base + shade[..., None] + rng.normal(0, 3, (height, width, 1))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(rng.integers(0, 4)):  # stains: soft brown blotches
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.2) * width
        blot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        arr -= blot[..., None] * rng.uniform(8, 25) * np.array([0.6, 0.8, 1.0], np.float32)
    edge = np.minimum(np.minimum(xx, width - 1 - xx), np.minimum(yy, height - 1 - yy))
    arr -= (np.exp(-edge / (0.02 * width)) * 35)[..., None]  # darkened, handled edges
    return np.clip(arr, 0, 255).astype(np.uint8)


def _layout(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int,
            ink: tuple[int, ...]) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Systems from top to bottom; returns (class, axis-aligned box) before rotation."""
    gap = height * rng.uniform(0.010, 0.014)  # staff line spacing
    left = width * rng.uniform(0.07, 0.12)
    right = width - width * rng.uniform(0.06, 0.10)
    y = height * rng.uniform(0.06, 0.10)
    bottom = height * rng.uniform(0.90, 0.94)
    staff_ink = (150, 40, 30) if rng.random() < 0.5 else ink
    regions = []
    first = True
    while True:
        staff_h, lyr_h = 4 * gap, 2.4 * gap
        sys_h = staff_h + gap * 1.0 + 0.6 * gap + lyr_h
        if y + sys_h > bottom:
            break
        x0 = left
        if rng.random() < (0.75 if first else 0.2):
            side = sys_h * rng.uniform(0.85, 1.0)
            box = (left, y - 0.3 * gap, left + side, y - 0.3 * gap + side)
            _drop_capital(draw, rng, box, ink)
            regions.append(("drop-capital", box))
            x0 = box[2] + gap * rng.uniform(0.6, 1.2)
        x1 = right if rng.random() > 0.15 else x0 + (right - x0) * rng.uniform(0.4, 0.8)
        top = y + 0.5 * gap
        _staff(draw, rng, x0, x1, top, gap, staff_ink, ink)
        regions.append(("staff", (x0, top - 0.5 * gap, x1, top + staff_h + 0.5 * gap)))
        lyr_top = top + staff_h + 1.1 * gap
        lyr_box = _lyrics(draw, rng, x0, x1, lyr_top, gap, ink)
        if lyr_box is not None:
            regions.append(("lyrics", lyr_box))
        y += sys_h + gap * rng.uniform(1.2, 2.5)
        first = False
    return regions


def _staff(draw: ImageDraw.ImageDraw, rng: np.random.Generator, x0: float, x1: float,
           top: float, gap: float, line_ink: tuple[int, ...], ink: tuple[int, ...]) -> None:
    lw = 1 if gap < 7 else 2
    xs = np.linspace(x0, x1, 24)
    wobble = rng.uniform(0.0, 0.6)
    for k in range(5):
        ys = top + k * gap + wobble * np.sin(xs / (x1 - x0 + 1) * rng.uniform(2, 6) + k)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=line_ink, width=lw)
    # A C clef, then groups of square notes on lines and spaces.
    cx = x0 + gap * 0.8
    draw.rectangle([cx, top + gap * 0.6, cx + gap * 0.7, top + gap * 1.4], fill=ink)
    draw.rectangle([cx, top + gap * 2.6, cx + gap * 0.7, top + gap * 3.4], fill=ink)
    x = cx + gap * 2.0
    while x < x1 - gap * 1.5:
        for _ in range(rng.integers(1, 5)):
            if x >= x1 - gap * 1.5:
                break
            pos = int(rng.integers(0, 9))  # 0 = top line … 8 = bottom line, half steps
            cy = top + pos * gap / 2
            s = gap * 0.45
            if rng.random() < 0.8:
                draw.rectangle([x - s, cy - s, x + s, cy + s], fill=ink)
            else:
                draw.polygon([(x, cy - s * 1.3), (x + s, cy), (x, cy + s * 1.3), (x - s, cy)],
                             fill=ink)
            if rng.random() < 0.25:
                draw.line([(x + s, cy), (x + s, cy + gap * 1.8)], fill=ink, width=1)
            x += gap * rng.uniform(1.1, 1.8)
        x += gap * rng.uniform(1.0, 3.5)
    if rng.random() < 0.6:  # bar line at the end
        draw.line([(x1 - 1, top), (x1 - 1, top + 4 * gap)], fill=ink, width=lw)


def _lyrics(draw: ImageDraw.ImageDraw, rng: np.random.Generator, x0: float, x1: float,
            top: float, gap: float, ink: tuple[int, ...]
            ) -> tuple[float, float, float, float] | None:
    """Cursive-like words: looping strokes along a baseline. Returns the tight box."""
    xh = gap * rng.uniform(0.9, 1.2)  # x-height
    base = top + gap * 1.7
    pen = 1 if gap < 6 else 2
    x = x0 + gap * rng.uniform(0.3, 1.5)
    all_pts = []
    while x < x1 - 3 * gap:
        letters = int(rng.integers(2, 7))
        lw = xh * rng.uniform(0.55, 0.8)
        t = np.linspace(0, 2 * math.pi * letters, letters * 10)
        tall = np.repeat(rng.random(letters) < 0.18, 10) * rng.uniform(0.6, 1.0) * xh
        amp = xh * 0.5 + tall * (np.sin(t) > 0)
        px = x + lw * t / (2 * math.pi) + 0.3 * lw * np.cos(t)
        py = base - xh * 0.5 - amp * np.sin(t) * rng.uniform(0.8, 1.0)
        px = np.minimum(px, x1 - 1)
        pts = list(zip(px.tolist(), py.tolist(), strict=True))
        draw.line(pts, fill=ink, width=pen, joint="curve")
        all_pts.append(np.stack([px, py], 1))
        x = float(px.max()) + gap * rng.uniform(0.9, 2.0)
    if not all_pts:
        return None
    pts = np.concatenate(all_pts)
    pad = pen / 2 + 0.5
    return (float(pts[:, 0].min() - pad), float(pts[:, 1].min() - pad),
            float(pts[:, 0].max() + pad), float(pts[:, 1].max() + pad))


def _drop_capital(draw: ImageDraw.ImageDraw, rng: np.random.Generator,
                  box: tuple[float, float, float, float], ink: tuple[int, ...]) -> None:
    x0, y0, x1, y1 = box
    side = x1 - x0
    colours = [(170, 35, 30), (40, 60, 150), (40, 110, 60), (190, 140, 40)]
    bg, fg = (colours[i] for i in rng.choice(len(colours), 2, replace=False))
    draw.rectangle(box, fill=bg, outline=ink, width=max(1, int(side / 20)))
    # Spiral tendrils on the background, then a thick letter-like glyph on top.
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        t = np.linspace(0, rng.uniform(3, 6) * math.pi, 40)
        r = side * 0.04 * t / math.pi
        pts = np.stack([np.clip(cx + r * np.cos(t), x0 + 1, x1 - 1),
                        np.clip(cy + r * np.sin(t), y0 + 1, y1 - 1)], 1)
        draw.line([tuple(p) for p in pts.tolist()], fill=(235, 220, 180), width=1)
    w = max(2, int(side / 7))
    m = side * 0.2
    shape = int(rng.integers(0, 3))
    if shape == 0:  # A-like
        draw.line([(x0 + m, y1 - m), ((x0 + x1) / 2, y0 + m), (x1 - m, y1 - m)], fill=fg, width=w)
        draw.line([(x0 + 1.6 * m, (y0 + y1) / 2 + m / 2), (x1 - 1.6 * m, (y0 + y1) / 2 + m / 2)],
                  fill=fg, width=max(1, w // 2))
    elif shape == 1:  # O/C-like
        draw.arc([x0 + m, y0 + m, x1 - m, y1 - m], rng.uniform(20, 60), 360, fill=fg, width=w)
    else:  # D/P-like
        draw.line([(x0 + m, y0 + m), (x0 + m, y1 - m)], fill=fg, width=w)
        draw.arc([x0, y0 + m, x1 - m, y1 - m], -90, 90, fill=fg, width=w)


def _bleed_through(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int,
                   height: int) -> None:
    """Faint strokes from the other side of the leaf: texture the model must ignore."""
    colour = (205, 190, 160)
    for _ in range(int(rng.integers(0, 12))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        length = rng.uniform(0.1, 0.6) * width
        draw.line([(x, y), (x + length, y + rng.uniform(-2, 2))], fill=colour, width=1)


def _margin_notes(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int,
                  ink: tuple[int, ...]) -> None:
    """Small unlabelled scribbles near the page edges (later hands, shelf marks)."""
    for _ in range(int(rng.integers(0, 3))):
        side = (0.01, 0.05) if rng.random() < 0.5 else (0.91, 0.95)
        x = rng.uniform(*side) * width
        y = rng.uniform(0.1, 0.9) * height
        t = np.linspace(0, 6 * math.pi, 30)
        pts = np.stack([x + t * 0.5, y + 2 * np.sin(t)], 1)
        draw.line([tuple(p) for p in pts.tolist()], fill=ink, width=1)


def _rotate_box(box: tuple[float, float, float, float], angle_deg: float, width: int,
                height: int) -> list[float]:
    """The box's corners after PIL's counter-clockwise rotation about the page centre."""
    x0, y0, x1, y1 = box
    a = math.radians(angle_deg)
    cx, cy = width / 2, height / 2
    out = []
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        dx, dy = x - cx, y - cy
        rx = cx + dx * math.cos(a) + dy * math.sin(a)
        ry = cy - dx * math.sin(a) + dy * math.cos(a)
        out += [float(min(max(round(rx), 0), width)), float(min(max(round(ry), 0), height))]
    return out
