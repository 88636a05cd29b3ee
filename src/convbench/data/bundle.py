"""The containers a data set lives in: :class:`Split`, :class:`DataBundle` and :class:`RawData`.

Images stay uint8 (N×C×H×W) in memory; the training engine converts, normalises and augments
whole batches on the device, so one copy of the data serves every run.

>>> import torch
>>> s = Split(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
>>> len(s)
4
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Split:
    """One split of a data set: images ``x`` (uint8, N×C×H×W) and labels ``y`` (int64, N)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class DataBundle:
    """A loaded data set: three splits plus what a model and a run log need to know about it.

    ``mean``/``std`` are per channel, on the 0..1 scale, computed on the train split only.
    """

    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split
    channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    skipped: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class RawData:
    """What a source hands to :func:`convbench.data.load_data`: numpy arrays before splitting.

    ``x_*`` are uint8 N×C×H×W, ``y_*`` int64 N.  A missing test (or val) split is ``None`` and is
    carved from train by the common code.  ``resized`` says the source already honoured
    ``cfg.image_size`` (so the common code must not resize again).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    classes: list[str]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    location: str | None = None
    skipped: int = 0
    notes: list[str] = field(default_factory=list)
    resized: bool = False
