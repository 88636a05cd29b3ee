import os
import pickle

import numpy as np
import pytest

from convbench.config import DataConfig
from convbench.data import load_data
from convbench.data.cifar import load_batch
from convbench.errors import DataError


def test_cifar10_batches_load(cifar10_dir):
    b = load_data(DataConfig(dataset="cifar10", data_dir=str(cifar10_dir.parent),
                             val_fraction=0.2), seed=0)
    assert (len(b.train), len(b.val), len(b.test)) == (40, 10, 10)
    assert tuple(b.train.x.shape[1:]) == (3, 32, 32) and b.channels == 3
    assert b.classes[:2] == ["airplane", "automobile"] and b.num_classes == 10
    # Row layout: 1024 red, then green, then blue values, each row-major 32×32.
    raw = load_batch(cifar10_dir / "test_batch")
    np.testing.assert_array_equal(b.test.x[0].numpy().reshape(-1), raw[b"data"][0])


def test_cifar10_found_via_batches_dir_itself(cifar10_dir):
    b = load_data(DataConfig(dataset="cifar10", data_dir=str(cifar10_dir)), seed=0)
    assert len(b.test) == 10


def test_truncated_batch_is_a_data_error(cifar10_dir):
    path = cifar10_dir / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="data_batch_3.*truncated"):
        load_data(DataConfig(dataset="cifar10", data_dir=str(cifar10_dir)), seed=0)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(str(target))}))
    with pytest.raises(DataError, match="not allowed"):
        load_batch(path)
    assert not target.exists()


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": np.array([1, "x"], dtype=object)}, protocol=2))
    with pytest.raises(DataError, match="not allowed"):
        load_batch(path)


def test_wrong_structure_is_a_data_error(cifar10_dir):
    with open(cifar10_dir / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 10), np.uint8), b"labels": [0, 1, 2]}, f)
    with pytest.raises(DataError, match="N×3072"):
        load_data(DataConfig(dataset="cifar10", data_dir=str(cifar10_dir)), seed=0)


@pytest.mark.parametrize("mode,classes", [("fine", 100), ("coarse", 20)])
def test_cifar100_label_modes(cifar100_dir, mode, classes):
    cfg = DataConfig(dataset="cifar100", data_dir=str(cifar100_dir.parent), label_mode=mode,
                     val_fraction=0)
    b = load_data(cfg, seed=0)
    assert b.num_classes == classes and b.classes[0] == f"{mode}00"
    assert (len(b.train), len(b.test)) == (200, 100)
    raw = load_batch(cifar100_dir / "test")
    assert b.test.y.tolist() == raw[f"{mode}_labels".encode()]


def test_missing_cifar_lists_paths(tmp_path):
    with pytest.raises(DataError) as err:
        load_data(DataConfig(dataset="cifar10", data_dir=str(tmp_path)), seed=0)
    assert str(tmp_path / "cifar-10-batches-py") in str(err.value)
    assert "--download" in str(err.value)
