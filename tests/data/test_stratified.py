import numpy as np
import pytest
import torch

from convbench.data import stratified_indices, stratified_split


def _labels():
    # Unbalanced: 500 / 300 / 150 / 50.
    return np.repeat(np.arange(4), [500, 300, 150, 50])


def test_fraction_keeps_class_proportions():
    y = _labels()
    idx = stratified_indices(y, 0.1, seed=3)
    assert np.bincount(y[idx]).tolist() == [50, 30, 15, 5]
    assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)


def test_count_keeps_proportions_and_sums_exactly():
    y = _labels()
    idx = stratified_indices(y, 333, seed=0)
    counts = np.bincount(y[idx], minlength=4)
    assert counts.sum() == 333
    assert np.all(np.abs(counts - 333 * np.array([0.5, 0.3, 0.15, 0.05])) < 1)


def test_same_seed_same_subset_other_seed_differs():
    y = _labels()
    a = stratified_indices(y, 0.2, seed=7)
    assert np.array_equal(a, stratified_indices(torch.from_numpy(y), 0.2, seed=7))
    assert not np.array_equal(a, stratified_indices(y, 0.2, seed=8))


def test_split_is_a_partition_that_keeps_every_class():
    y = np.array([0] * 10 + [1] * 2 + [2])
    kept, taken = stratified_split(y, 0.5, seed=0)
    assert sorted(np.concatenate([kept, taken]).tolist()) == list(range(len(y)))
    assert set(y[kept].tolist()) == {0, 1, 2}  # the singleton class stays in the kept part


def test_edge_sizes():
    y = _labels()
    assert len(stratified_indices(y, 0.0, seed=0)) == 0
    assert len(stratified_indices(y, 5000, seed=0)) == len(y)
    assert len(stratified_indices(y, 1e-6, seed=0)) == 1  # a positive fraction takes one
    with pytest.raises(TypeError):
        stratified_indices(y, True, seed=0)
    with pytest.raises(ValueError):
        stratified_indices(y, 1.5, seed=0)
