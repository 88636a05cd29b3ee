"""The ``synthetic`` source: coloured shapes on noisy backgrounds, generated in memory.

Each image holds one shape (circle, square, triangle, cross, ring, diamond) with random
position, size and colours on a random noisy background — easy for a small CNN, hard for a
linear model.  The images come from a fixed generator seed, so every run sees the same data
set, like a downloaded one; the run seed only drives splits and subsets.

>>> x, y = make_shapes(12, 16, seed=0)
>>> x.shape, x.dtype, sorted(set(y.tolist()))
((12, 3, 16, 16), dtype('uint8'), [0, 1, 2, 3, 4, 5])
"""

from __future__ import annotations

import numpy as np

from ..config import DataConfig
from .bundle import RawData
from .sources import register_source

SHAPES = ["circle", "square", "triangle", "cross", "ring", "diamond"]
DATA_SEED = 20240501  # fixed: the data set itself never depends on the run seed


def _masks(label: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Boolean N×S×S masks; ``dx``/``dy`` are pixel offsets from the centre in radius units."""
    r2 = dx**2 + dy**2
    ax, ay = np.abs(dx), np.abs(dy)
    shapes = [r2 <= 1.0,
              np.maximum(ax, ay) <= 0.8,
              (dy <= 0.8) & (ax <= (dy + 0.9) / 1.7),  # apex up, flat base
              ((ax <= 0.3) & (ay <= 1.0)) | ((ay <= 0.3) & (ax <= 1.0)),
              (r2 <= 1.0) & (r2 >= 0.5**2),
              ax + ay <= 1.1]
    out = np.zeros(np.broadcast_shapes(dx.shape, dy.shape), dtype=bool)
    for k, mask in enumerate(shapes):
        out |= mask & (label == k)[:, None, None]
    return out


def _draw(y: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    n = len(y)
    radius = rng.uniform(0.2, 0.38, n) * side
    cx = rng.uniform(radius, side - radius)  # keep the whole shape inside the image
    cy = rng.uniform(radius, side - radius)
    grid = np.arange(side, dtype=np.float32) + 0.5
    dx = (grid[None, None, :] - cx[:, None, None]) / radius[:, None, None]
    dy = (grid[None, :, None] - cy[:, None, None]) / radius[:, None, None]
    mask = _masks(y, dx.astype(np.float32), dy.astype(np.float32))[:, None]
    bg = rng.uniform(0, 1, (n, 3, 1, 1)).astype(np.float32)
    # Shift each channel by 0.35..0.65 (mod 1) so the shape always stands out.
    fg = (bg + rng.uniform(0.35, 0.65, (n, 3, 1, 1)).astype(np.float32)) % 1.0
    img = np.where(mask, fg, bg) + 0.08 * rng.standard_normal((n, 3, side, side), dtype=np.float32)
    return np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_shapes(n: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` balanced, shuffled images (uint8 n×3×side×side) and labels (int64).

    >>> make_shapes(6, 8, seed=1)[1].tolist() == make_shapes(6, 8, seed=1)[1].tolist()
    True
    """
    y = np.random.default_rng(seed).permutation(np.arange(n) % len(SHAPES)).astype(np.int64)
    x = np.empty((n, 3, side, side), np.uint8)
    # Chunks bound the float scratch memory for large sides; each has its own seeded stream.
    chunk = max(1, 2**22 // (side * side))
    for k, start in enumerate(range(0, n, chunk)):
        rng = np.random.default_rng([seed, k])
        x[start:start + chunk] = _draw(y[start:start + chunk], side, rng)
    return x, y


@register_source("synthetic", description="generated coloured shapes on noisy backgrounds "
                 "(size: data.synthetic_size; side: data.image_size or 32)",
                 how_to_get="generated on the fly", classes=len(SHAPES), image_shape=(3, 32, 32),
                 locate=lambda d: "generated in memory")
def load_synthetic(cfg: DataConfig, seed: int) -> RawData:
    """``cfg.synthetic_size`` train and half as many test images at ``cfg.image_size`` (32)."""
    side = cfg.image_size or 32
    x_train, y_train = make_shapes(cfg.synthetic_size, side, DATA_SEED)
    x_test, y_test = make_shapes(max(1, cfg.synthetic_size // 2), side, DATA_SEED + 1)
    return RawData(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   classes=list(SHAPES), resized=True,
                   notes=[f"synthetic: {len(SHAPES)} shapes, {side}×{side}, fixed data seed"])
