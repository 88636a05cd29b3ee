"""``load_data``: one place that turns any source's raw arrays into a :class:`DataBundle`.

Steps, in order: carve a test split if the source has none; ``train_limit``/``test_limit``
subsets; carve val from train; channel conversion; resize; train mean/std.  The test split
never depends on the run seed (carving and ``test_limit`` use a fixed seed), so every run of
a data set is scored on the same images; the run seed drives train subsets and the val carve.

>>> from convbench.config import DataConfig
>>> b = load_data(DataConfig(dataset="digits"), seed=0)
>>> len(b.train) + len(b.val) + len(b.test), b.num_classes
(1797, 10)
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from .bundle import DataBundle, RawData, Split
from .sources import DATASETS
from .splits import stratified_indices, stratified_split
from .transforms import channel_stats, resize, to_channels

TEST_FRACTION = 0.2  # share of train carved as test when a source has no test split
TEST_SEED = 0  # fixed: the test set is the same for every run seed
# Tags that give each seeded step its own random stream.
_TRAIN_LIMIT, _VAL = 1, 2

Arrays = tuple[np.ndarray, np.ndarray]


def _take(xy: Arrays, idx: np.ndarray) -> Arrays:
    return xy[0][idx], xy[1][idx]


def _split(xy: Arrays) -> Split:
    x, y = xy
    # Sources may hand out read-only views (np.frombuffer); torch wants writable memory.
    x = np.ascontiguousarray(x) if x.flags.writeable else np.array(x, order="C")
    return Split(torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.int64).copy()))


def _check(raw: RawData, name: str) -> None:
    if len(raw.classes) < 2:  # one class trains to a meaningless 100 % (or 0-loss NaN)
        raise DataError(f"{name}: found {len(raw.classes)} class(es) ({', '.join(raw.classes)});"
                        " a classifier needs two or more (one sub-folder per class).")
    for part in ("train", "val", "test"):
        x, y = getattr(raw, f"x_{part}"), getattr(raw, f"y_{part}")
        if x is None:
            continue
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) != len(y):
            raise DataError(f"{name}: {part} images have shape {x.shape} ({x.dtype}) for "
                            f"{len(y)} labels; expected N×C×H×W uint8 with C 1 or 3.")


def _carve_test(raw: RawData, name: str, notes: list[str]) -> tuple[Arrays, Arrays]:
    train: Arrays = (raw.x_train, raw.y_train)
    if raw.x_test is not None:
        return train, (raw.x_test, raw.y_test)
    keep, take = stratified_split(raw.y_train, TEST_FRACTION, seed=TEST_SEED)
    notes.append(f"{name}: no test split given; a stratified {TEST_FRACTION:.0%} of the images "
                 f"({len(take)}) is the test set, the same for every run")
    return _take(train, keep), _take(train, take)


def _limit(xy: Arrays, limit: int | None, seed: list[int] | int, what: str,
           notes: list[str]) -> Arrays:
    if limit is None or limit >= len(xy[1]):
        return xy
    notes.append(f"{what}: stratified subset of {limit} of {len(xy[1])} images")
    return _take(xy, stratified_indices(xy[1], limit, seed))


def _carve_val(raw: RawData, train: Arrays, cfg: DataConfig, seed: int,
               notes: list[str]) -> tuple[Arrays, Arrays]:
    if raw.x_val is not None:
        notes.append(f"val: given by the source ({len(raw.y_val)} images)")
        return train, (raw.x_val, raw.y_val)
    if cfg.val_fraction == 0:
        empty = (train[0][:0], train[1][:0])
        notes.append("val: none (data.val_fraction = 0)")
        return train, empty
    keep, take = stratified_split(train[1], cfg.val_fraction, seed=[seed, _VAL])
    notes.append(f"val: stratified {cfg.val_fraction:.0%} of train ({len(take)} images), "
                 f"seed {seed}")
    return _take(train, keep), _take(train, take)


def load_data(cfg: DataConfig, seed: int) -> DataBundle:
    """Load ``cfg.dataset`` into memory as uint8 splits, ready for training.

    Raises :class:`~convbench.errors.UnknownNameError` for an unknown data set and
    :class:`~convbench.errors.DataError` for missing, truncated or corrupt data.

    >>> from convbench.config import DataConfig
    >>> load_data(DataConfig(dataset="synthetic", synthetic_size=60), seed=1).classes[:2]
    ['circle', 'square']
    """
    source = DATASETS.get(cfg.dataset)
    if cfg.channels not in (None, 1, 3):
        raise DataError(f"data.channels = {cfg.channels}: use 1 (grey) or 3 (RGB).")
    raw = source(cfg, seed)
    _check(raw, cfg.dataset)
    notes = list(raw.notes)
    train, test = _carve_test(raw, cfg.dataset, notes)
    if len(test[1]) == 0:
        raise DataError(f"{cfg.dataset}: too few images to hold out a test split "
                        f"({len(train[1])} in all). Add images, or give a separate test set "
                        "(a test/ sub-folder for folder data).")
    train = _limit(train, cfg.train_limit, [seed, _TRAIN_LIMIT], "train", notes)
    test = _limit(test, cfg.test_limit, TEST_SEED, "test", notes)
    train, val = _carve_val(raw, train, cfg, seed, notes)
    if len(train[1]) == 0:
        raise DataError(f"{cfg.dataset}: no training images left. Check the data (and "
                        "data.val_fraction / data.train_limit).")

    splits = [_split(xy) for xy in (train, val, test)]
    channels = cfg.channels or int(splits[0].x.shape[1])
    if splits[0].x.shape[1] != channels:
        notes.append(f"channels: converted {splits[0].x.shape[1]} → {channels}")
    size = tuple(splits[0].x.shape[2:])
    if cfg.image_size and not raw.resized and size != (cfg.image_size, cfg.image_size):
        notes.append(f"resized {size[0]}×{size[1]} → {cfg.image_size}×{cfg.image_size} "
                     "(bilinear, antialiased)")
        size = (cfg.image_size, cfg.image_size)
    for s in splits:  # convert channels where the tensor is smallest
        if channels < s.x.shape[1]:
            s.x = resize(to_channels(s.x, channels), size)
        else:
            s.x = to_channels(resize(s.x, size), channels)
    mean, std = channel_stats(splits[0].x)
    return DataBundle(name=cfg.dataset, classes=list(raw.classes), train=splits[0],
                      val=splits[1], test=splits[2], channels=channels,
                      image_size=(int(size[0]), int(size[1])), mean=mean, std=std,
                      skipped=raw.skipped, notes=notes)
