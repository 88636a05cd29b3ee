import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from convbench.config import DataConfig
from convbench.data import idx, load_data
from convbench.data.idx import read_idx
from convbench.errors import DataError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_read_idx_gz_and_plain(tmp_path, idx_writer):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    gz = idx_writer(tmp_path / "a-idx3-ubyte.gz", arr)
    plain = idx_writer(tmp_path / "a-idx3-ubyte", arr, gz=False)
    assert gzip.decompress(gz.read_bytes())[:4] == b"\x00\x00\x08\x03"
    np.testing.assert_array_equal(read_idx(gz), arr)
    np.testing.assert_array_equal(read_idx(plain), arr)


def test_truncated_idx_names_file_and_says_redownload(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "train-images-idx3-ubyte", np.ones((5, 4, 4), np.uint8), gz=False)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="truncated") as err:
        read_idx(path)
    assert str(path) in str(err.value) and "download" in str(err.value)


def test_truncated_gzip_is_a_data_error(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "x.gz", np.ones((50, 8, 8), np.uint8))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=r"x\.gz.*(truncated|corrupt)"):
        read_idx(path)


def test_bad_magic_is_a_data_error(tmp_path):
    path = tmp_path / "junk-idx1-ubyte"
    path.write_bytes(b"PK\x03\x04 not idx at all")
    with pytest.raises(DataError, match="magic"):
        read_idx(path)
    # starts like IDX (0, 0, uint8) but claims 200 dimensions: not "truncated", not IDX
    path.write_bytes(b"\x00\x00\x08\xc8" + bytes(900))
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


def test_mnist_from_data_dir(idx_dir):
    b = load_data(DataConfig(dataset="mnist", data_dir=str(idx_dir), val_fraction=0.25), seed=0)
    assert (len(b.train), len(b.val), len(b.test)) == (30, 10, 20)
    assert b.train.x.shape[1:] == (1, 6, 6) and b.train.x.dtype.is_floating_point is False
    assert b.classes == [str(i) for i in range(10)]
    assert b.image_size == (6, 6) and b.channels == 1


def test_plain_idx_files_are_found_too(tmp_path, idx_dir):
    for gz in idx_dir.glob("*.gz"):
        (tmp_path / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    b = load_data(DataConfig(dataset="mnist", data_dir=str(tmp_path), val_fraction=0), seed=0)
    assert len(b.train) == 40 and len(b.val) == 0


def test_env_var_subfolder_and_cache_are_searched(tmp_path, idx_dir, monkeypatch):
    (tmp_path / "store").mkdir()
    os.rename(idx_dir, tmp_path / "store" / "mnist")
    monkeypatch.setenv("CONVBENCH_DATA", str(tmp_path / "store"))
    b = load_data(DataConfig(dataset="mnist"), seed=0)
    assert any(str(tmp_path / "store" / "mnist") in n for n in b.notes)

    monkeypatch.delenv("CONVBENCH_DATA")
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "convbench"
    cache.mkdir(parents=True)
    os.rename(tmp_path / "store" / "mnist", cache / "mnist")
    assert len(load_data(DataConfig(dataset="mnist"), seed=0).test) == 20


def test_missing_mnist_lists_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_DATA", str(tmp_path / "env"))
    (tmp_path / "mine").mkdir()  # there, but empty (a --data-dir not there is its own error)
    with pytest.raises(DataError) as err:
        load_data(DataConfig(dataset="mnist", data_dir=str(tmp_path / "mine")), seed=0)
    msg = str(err.value)
    for place in (tmp_path / "mine", tmp_path / "mine" / "mnist", tmp_path / "env",
                  tmp_path / "env" / "mnist",
                  Path(os.environ["XDG_CACHE_HOME"]) / "convbench" / "mnist"):
        assert str(place) in msg
    assert "--download" in msg and "--data-dir" in msg


def test_missing_fashion_mnist_suggests_apt(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "SYSTEM_DIRS", {"fashion-mnist": [str(tmp_path / "nowhere")]})
    with pytest.raises(DataError) as err:
        load_data(DataConfig(dataset="fashion-mnist"), seed=0)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    assert str(tmp_path / "nowhere") in str(err.value)


def test_label_out_of_range_is_a_data_error(idx_dir, idx_writer):
    idx_writer(idx_dir / "t10k-labels-idx1-ubyte.gz", np.full(20, 12, np.uint8))
    with pytest.raises(DataError, match="out of range"):
        load_data(DataConfig(dataset="mnist", data_dir=str(idx_dir)), seed=0)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="apt package dataset-fashion-mnist "
                    "not installed")
def test_real_fashion_mnist_from_debian_package():
    b = load_data(DataConfig(dataset="fashion-mnist", val_fraction=0), seed=0)
    assert (len(b.train), len(b.test)) == (60000, 10000)
    assert tuple(b.train.x.shape) == (60000, 1, 28, 28) and b.train.x.dtype.itemsize == 1
    assert b.classes[0] == "T-shirt/top" and b.num_classes == 10
    assert np.bincount(b.test.y.numpy()).tolist() == [1000] * 10
    # Published Fashion-MNIST train statistics.
    assert b.mean[0] == pytest.approx(0.2860, abs=1e-3)
    assert b.std[0] == pytest.approx(0.3530, abs=1e-3)
