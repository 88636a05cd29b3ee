"""The ``digits`` source: scikit-learn's 1,797 8×8 handwritten digits, always available.

Pixel values 0..16 are scaled to 0..255.  There is no official test split; the common code
carves a stratified 20 % one.

>>> from convbench.config import DataConfig
>>> load_digits_source(DataConfig(), seed=0).x_train.shape
(1797, 1, 8, 8)
"""

from __future__ import annotations

import numpy as np

from ..config import DataConfig
from .bundle import RawData
from .sources import register_source


@register_source("digits", description="scikit-learn handwritten digits (small, bundled; "
                 "test carved from train)", how_to_get="bundled with scikit-learn",
                 classes=10, image_shape=(1, 8, 8), train_size=1797, test_size=None,
                 locate=lambda d: "scikit-learn")
def load_digits_source(cfg: DataConfig, seed: int) -> RawData:
    """All 1,797 digits as the train pool (uint8 N×1×8×8)."""
    from sklearn.datasets import load_digits  # sklearn is slow to import; only when needed

    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    return RawData(x_train=x, y_train=d.target.astype(np.int64),
                   classes=[str(c) for c in d.target_names], location="scikit-learn",
                   notes=["digits: scikit-learn load_digits (values 0..16 scaled to 0..255)"])
