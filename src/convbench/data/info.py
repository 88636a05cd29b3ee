"""``dataset_info``: what ``convbench datasets`` shows, from file presence only (fast).

>>> [row["name"] for row in dataset_info()][:2]  # doctest: +SKIP
['fashion-mnist', 'mnist']
"""

from __future__ import annotations

from typing import Any

from ..config import DataConfig
from .sources import DATASETS


def dataset_info(data_dir: str | None = None) -> list[dict[str, Any]]:
    """One dict per data set: name, description, classes, image_shape (C, H, W), train_size,
    test_size, found, location, how_to_get.  Looks for files but never reads a data set.

    >>> next(r for r in dataset_info() if r["name"] == "digits")["found"]
    True
    """
    rows = []
    for name in DATASETS.names():
        src = DATASETS.get(name)
        location = src.locate(data_dir) if src.locate else None
        row: dict[str, Any] = {
            "name": name, "description": src.description, "classes": src.classes,
            "image_shape": src.image_shape, "train_size": src.train_size,
            "test_size": src.test_size, "found": location is not None,
            "location": None if location is None else str(location),
            "how_to_get": src.how_to_get}
        if src.inspect and location is not None:
            row.update(src.inspect(data_dir))
        rows.append(row)
    return rows


def check_available(cfg: DataConfig) -> None:
    """Fail now, before any training, when ``cfg.dataset`` is unknown or its files are
    nowhere to be found (with the loader's own "looked in … / to get it" message)."""
    src = DATASETS.get(cfg.dataset)
    if cfg.download or src.locate is None or src.locate(cfg.data_dir) is not None:
        return
    src(cfg, seed=0)  # finds nothing either, and raises the message that says what to do
