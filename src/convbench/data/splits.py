"""Stratified, seeded subsets and splits: every class keeps its share.

Used for ``train_limit``/``test_limit`` subsets, carving val (and test, when a source has none)
from train, and by search screening to draw small representative subsets.

>>> import numpy as np
>>> y = np.array([0] * 80 + [1] * 20)
>>> idx = stratified_indices(y, 0.1, seed=0)
>>> len(idx), int((y[idx] == 1).sum())
(10, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

Seed = int | Sequence[int]


def _labels(y: np.ndarray | torch.Tensor | Sequence[int]) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return np.asarray(y).reshape(-1)


def _target(size: float | int, n: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | float | np.integer | np.floating):
        raise TypeError(f"size must be a fraction (float) or a count (int), got {size!r}")
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if isinstance(size, float | np.floating):
        if size > 1:
            raise ValueError(f"a fraction must be between 0 and 1, got {size}")
        # A positive fraction of a non-empty set takes at least one example.
        return max(1, round(size * n)) if size > 0 and n else 0
    return min(int(size), n)


def _allocate(counts: np.ndarray, k: int, cap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-class counts summing to ``k``, proportional to ``counts`` (largest remainder)."""
    quota = k * counts / counts.sum()
    take = np.minimum(np.floor(quota).astype(np.int64), cap)
    # Largest remainders first; ties broken at random so no class is favoured by its index.
    order = np.lexsort((rng.permutation(len(counts)), -(quota - take)))
    remaining = k - int(take.sum())
    while remaining > 0:
        for c in order:
            if remaining and take[c] < cap[c]:
                take[c] += 1
                remaining -= 1
    return take


def stratified_indices(y: np.ndarray | torch.Tensor | Sequence[int], size: float | int,
                       seed: Seed, *, keep_one: bool = False) -> np.ndarray:
    """Sorted indices of a stratified random subset of the labels ``y``.

    ``size`` is a fraction of ``len(y)`` (float, 0..1) or a count (int, clipped to ``len(y)``).
    With ``keep_one`` the last example of a class is never taken, so what is left still holds
    every class.  The same ``seed`` gives the same subset.

    >>> stratified_indices([0, 0, 0, 1, 1, 1], 2, seed=0).tolist() in ([0, 3], [0, 4], [0, 5],
    ...     [1, 3], [1, 4], [1, 5], [2, 3], [2, 4], [2, 5])
    True
    """
    labels = _labels(y)
    rng = np.random.default_rng(seed)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    cap = np.maximum(counts - 1, 0) if keep_one else counts
    k = min(_target(size, labels.size), int(cap.sum()))
    take = _allocate(counts, k, cap, rng)
    by_class = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    chosen = [rng.choice(by_class[starts[c]:starts[c + 1]], take[c], replace=False)
              for c in range(len(counts)) if take[c]]
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def stratified_split(y: np.ndarray | torch.Tensor | Sequence[int], size: float | int,
                     seed: Seed) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, taken)`` index arrays: ``taken`` is a stratified ``size`` share, ``kept`` the
    rest, which keeps at least one example of every class.

    >>> kept, taken = stratified_split([0] * 5 + [1] * 5, 0.2, seed=0)
    >>> len(kept), len(taken)
    (8, 2)
    """
    labels = _labels(y)
    taken = stratified_indices(labels, size, seed, keep_one=True)
    kept = np.setdiff1d(np.arange(labels.size), taken, assume_unique=True)
    return kept.astype(np.int64), taken
