"""Load the data set a detection config names (synthetic, COCO or PAGE-XML) and split it.

>>> from convbench.detection.config import DetectDataConfig
>>> train, test = load_split(DetectDataConfig(source="synth", path="pages", synth_pages=8,
...                                           synth_size=128))   # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..data.sources import cache_root
from ..errors import DataError
from .coco import read_coco
from .config import DetectDataConfig
from .dataset import DetectionDataset, split_pages
from .pagexml import read_pagexml
from .synth import synthesize


def synth_dir(cfg: DetectDataConfig) -> Path:
    """Where synthetic pages of this config live (``data.path`` or a cache folder)."""
    if cfg.path:
        return Path(cfg.path)
    return cache_root() / "detect-synth" / (
        f"pages{cfg.synth_pages}-size{cfg.synth_size}-seed{cfg.synth_seed}")


def load_dataset(cfg: DetectDataConfig) -> DetectionDataset:
    """The whole data set (synthetic pages are drawn once and reused from disk)."""
    if cfg.source == "synth":
        folder = synth_dir(cfg)
        ann = folder / "annotations.json"
        if not ann.is_file():
            if not cfg.path and folder.is_dir():
                # Our own cache, cut short before its annotations.json: draw it again.
                shutil.rmtree(folder)
            synthesize(folder, cfg.synth_pages, cfg.synth_size, cfg.synth_seed)
        return read_coco(ann, classes=cfg.classes, strict=cfg.strict)
    if not cfg.path:
        what = "COCO JSON file" if cfg.source == "coco" else "folder of PAGE-XML files"
        raise DataError(f"data.source={cfg.source} needs data.path: the {what}.")
    _check_format(cfg.source, Path(cfg.path))
    if cfg.source == "coco":
        return read_coco(cfg.path, image_root=cfg.image_dir, classes=cfg.classes,
                         strict=cfg.strict)
    return read_pagexml(cfg.path, region_map=cfg.region_map, image_dir=cfg.image_dir,
                        classes=cfg.classes, strict=cfg.strict)


def _check_format(source: str, path: Path) -> None:
    """Refuse a path of the other format before a reader misreads it (JSON parsed as XML)."""
    if source == "coco" and (path.is_dir() or path.suffix.lower() == ".xml"):
        given, other = ("a folder" if path.is_dir() else "an XML file"), "pagexml"
    elif source == "pagexml" and path.suffix.lower() == ".json":
        given, other = "a JSON file", "coco"
    else:
        return
    expected = {"coco": "one COCO JSON file",
                "pagexml": "a folder of PAGE-XML files or one .xml file"}[source]
    raise DataError(f"Data source {source} expects {expected}, but {str(path)!r} is {given}: "
                    f"use --source {other} (data.source: {other}).")


def load_split(cfg: DetectDataConfig) -> tuple[DetectionDataset, DetectionDataset]:
    """Train and test pages, split by ``cfg.split_seed``."""
    ds = load_dataset(cfg)
    if not ds.pages:
        raise DataError(f"No usable pages in the data ({ds.issue_summary()}).")
    return split_pages(ds, cfg.test_fraction, cfg.split_seed)
