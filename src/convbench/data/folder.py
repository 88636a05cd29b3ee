"""The ``folder`` source: a user's images in ``ROOT/<class>/<image>`` folders.

Also ``ROOT/train|val|test/<class>/<image>``: given splits are used as they are, missing ones
are carved from train by the common code.  Every image is decoded once (in a thread pool:
Pillow releases the GIL while decoding), converted to RGB — or to grey when every image is
grey — and resized to ``data.image_size`` or, when that is unset, to the most common size
among the images.  Class order is the sorted folder names.

>>> from convbench.config import DataConfig
>>> load_folder(DataConfig(dataset="folder", data_dir="photos"), seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps

from ..config import DataConfig
from ..errors import DataError
from .bundle import RawData
from .sources import register_source

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
# What Pillow raises for files that are not images, truncated or otherwise broken.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

T = TypeVar("T")
Tree = dict[str, dict[str, list[Path]]]  # split → class → image files


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def images_in(folder: Path) -> list[Path]:
    """Image files below ``folder`` (any depth, hidden folders skipped), sorted."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_EXTS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _split_dirs(root: Path) -> dict[str, Path] | None:
    """``{split: folder}`` when ``root`` uses the train/val/test layout, else None."""
    train = root / "train"
    if not (train.is_dir() and _subdirs(train)):
        return None
    found = {}
    for split, names in SPLIT_DIRS.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found


def scan_folder(root: str | Path) -> Tree:
    """List image files per split and class without opening them.

    >>> scan_folder("photos")["train"]["cat"][:1]  # doctest: +SKIP
    [PosixPath('photos/cat/001.jpg')]
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"Image folder {str(root)!r} does not exist. Pass --data-dir ROOT with "
                        "ROOT/<class>/<image> sub-folders.")
    splits = _split_dirs(root) or {"train": root}
    return {split: {c.name: images_in(c) for c in _subdirs(folder)}
            for split, folder in splits.items()}


def count_classes(root: str | Path) -> int | None:
    """Number of class folders under ``root`` (cheap: no file is opened), None if not a folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return None
    splits = _split_dirs(root) or {"train": root}
    return len({c.name for folder in splits.values() for c in _subdirs(folder)}) or None


def parallel_map(fn: Callable[[Path], T], paths: list[Path]) -> list[T | Exception]:
    """``fn`` of every path on a thread pool, in order; a decode error is returned, not raised."""
    def safe(path: Path) -> T | Exception:
        try:
            return fn(path)
        except DECODE_ERRORS as err:
            return err

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(safe, paths, chunksize=16))


def _probe(path: Path) -> tuple[tuple[int, int], str]:
    with Image.open(path) as im:  # reads the header only
        return (im.height, im.width), im.mode


def _to_grey(im: Image.Image) -> Image.Image:
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        # Wide grey (16-bit TIFF/PNG, float): scale into 0..255 instead of clipping.
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(arr.max()), 255.0)
        return Image.fromarray(np.clip(np.rint(arr * 255.0 / top), 0, 255).astype(np.uint8), "L")
    return im.convert("L")


def decoder(size: tuple[int, int], grey: bool) -> Callable[[Path], np.ndarray]:
    """A function reading one image file as a uint8 array of ``size`` (grey or RGB)."""
    h, w = size

    def decode(path: Path) -> np.ndarray:
        with Image.open(path) as im:
            im.load()  # decode now, so a truncated file fails here
            im = ImageOps.exif_transpose(im)
            if grey or im.mode in GREY_MODES:
                im = _to_grey(im)
            im = im.convert("L" if grey else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
        return arr[None] if grey else arr.transpose(2, 0, 1)

    return decode


def _refuse(failed: list[tuple[Path, Exception]]) -> DataError:
    path, err = failed[0]
    return DataError(f"{path}: unreadable image ({err}). Fix or remove it, or set "
                     "data.strict=false to skip unreadable images.")


@register_source("folder", description="your images: ROOT/<class>/<image> or "
                 "ROOT/train|val|test/<class>/<image> (PNG, JPEG, TIFF, BMP, WebP)",
                 how_to_get="`--data-dir ROOT` with one sub-folder of images per class",
                 locate=lambda d: str(Path(d).expanduser()) if d and count_classes(d) else None,
                 inspect=lambda d: {"classes": count_classes(d) if d else None})
def load_folder(cfg: DataConfig, seed: int) -> RawData:
    """Decode every image under ``cfg.data_dir`` into memory (see the module docstring)."""
    if not cfg.data_dir:
        raise DataError("Data set 'folder' needs --data-dir ROOT, with ROOT/<class>/<image> "
                        "(or ROOT/train|val|test/<class>/<image>).")
    root = Path(cfg.data_dir).expanduser()
    tree = scan_folder(root)
    classes = sorted({c for split in tree.values() for c, files in split.items() if files})
    if not classes:
        raise DataError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_EXTS))} "
                        "files in ROOT/<class>/ folders). Check --data-dir.")
    label = {c: i for i, c in enumerate(classes)}
    items = [(split, path, label[c]) for split, per_class in tree.items()
             for c, files in per_class.items() for path in files]
    notes = [f"folder: root {root} ({len(classes)} classes: {', '.join(classes[:10])}"
             f"{', …' if len(classes) > 10 else ''})"]
    empty = sorted({c for split in tree.values() for c, f in split.items() if not f} - set(label))
    if empty:
        notes.append(f"folder: ignored class folders without images: {', '.join(empty)}")

    failed: list[tuple[Path, Exception]] = []
    probes = parallel_map(_probe, [p for _, p, _ in items])
    ok = []
    for item, probe in zip(items, probes, strict=True):
        if isinstance(probe, Exception):
            failed.append((item[1], probe))
        else:
            ok.append((item, probe))
    if failed and cfg.strict:
        raise _refuse(failed)
    if not ok:
        raise DataError(f"{root}: none of the {len(items)} image files could be read. "
                        "Check the files.")
    grey = all(mode in GREY_MODES for _, (_, mode) in ok)
    if cfg.image_size:
        size = (cfg.image_size, cfg.image_size)
    else:
        size = Counter(hw for _, (hw, _) in ok).most_common(1)[0][0]
        notes.append(f"folder: images resized to {size[0]}×{size[1]}, the most common size "
                     "(set data.image_size to choose)")

    decoded = parallel_map(decoder(size, grey), [item[1] for item, _ in ok])
    late = [(item[1], arr) for (item, _), arr in zip(ok, decoded, strict=True)
            if isinstance(arr, Exception)]
    if late and cfg.strict:
        raise _refuse(late)
    failed += late
    if failed:
        notes.append(f"folder: skipped {len(failed)} unreadable image(s):")
        notes += [f"  {path} ({why})" for path, why in failed]
    good = [(item, arr) for (item, _), arr in zip(ok, decoded, strict=True)
            if not isinstance(arr, Exception)]

    out: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {}
    for split in ("train", "val", "test"):
        if split not in tree:
            out[split] = (None, None)
            continue
        rows = [(arr, y) for (s, _, y), arr in good if s == split]
        x = np.empty((len(rows), 1 if grey else 3, *size), np.uint8)
        for i, (arr, _) in enumerate(rows):
            x[i] = arr
        out[split] = (x, np.array([y for _, y in rows], dtype=np.int64))
    return RawData(x_train=out["train"][0], y_train=out["train"][1], x_val=out["val"][0],
                   y_val=out["val"][1], x_test=out["test"][0], y_test=out["test"][1],
                   classes=classes, location=str(root), skipped=len(failed),
                   notes=notes, resized=True)
