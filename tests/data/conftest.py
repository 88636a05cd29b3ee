"""Fixtures that write tiny data sets in their real on-disk formats (no network)."""

from __future__ import annotations

import gzip
import http.server
import pickle
import struct
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path_factory, monkeypatch):
    """Keep the user's cache and $CONVBENCH_DATA out of every data test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("CONVBENCH_DATA", raising=False)


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write a uint8 array in the IDX format (magic 0,0,0x08,ndim; big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def idx_arrays(n_train: int = 40, n_test: int = 20, side: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), np.uint8),
            "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), np.uint8),
            "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8)}


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    """A folder with four gzipped IDX files: 40 train and 20 test 6×6 images, 10 classes."""
    folder = tmp_path / "idx"
    folder.mkdir()
    for name, arr in idx_arrays().items():
        write_idx(folder / f"{name}.gz", arr)
    return folder


def cifar_rows(n: int, classes: int, rng: np.random.Generator):
    data = rng.integers(0, 256, (n, 3072), np.uint8)
    labels = [int(i % classes) for i in range(n)]
    return data, labels


@pytest.fixture
def cifar10_dir(tmp_path) -> Path:
    """``<tmp>/cifar10/cifar-10-batches-py`` with the real dict layout, 10 rows per batch.

    Batches alternate pickle protocols 2 (as Python 2 era files) and the current default.
    """
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, labels = cifar_rows(10, 10, rng)
        batch = {b"batch_label": f"batch {i}".encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img{j}.png".encode() for j in range(10)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2 if i % 2 == 0 else pickle.DEFAULT_PROTOCOL)
    meta = {b"label_names": [n.encode() for n in ["airplane", "automobile", "bird", "cat",
                                                   "deer", "dog", "frog", "horse", "ship",
                                                   "truck"]],
            b"num_cases_per_batch": 10, b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


@pytest.fixture
def cifar100_dir(tmp_path) -> Path:
    """``<tmp>/cifar-100-python`` (train, test, meta) with fine and coarse labels."""
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 200), ("test", 100)):
        data, fine = cifar_rows(n, 100, rng)
        batch = {b"filenames": [b"x.png"] * n, b"batch_label": name.encode(),
                 b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine], b"data": data}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {b"fine_label_names": [f"fine{i:02d}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i:02d}".encode() for i in range(20)]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


def save_image(path: Path, size=(12, 12), mode="RGB", seed=0, fmt=None) -> Path:
    """A random real image file (format from the suffix unless ``fmt``)."""
    rng = np.random.default_rng(seed)
    h, w = size
    shape = (h, w) if mode == "L" else (h, w, 3)
    Image.fromarray(rng.integers(0, 256, shape, np.uint8), mode).save(path, format=fmt)
    return path


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """root/{bird,cat,dog}: 5 images each in PNG/JPEG/TIFF/BMP/WebP, mostly 12×12 (one
    16×10), plus ``cat/broken.png`` holding random bytes and a stray ``notes.txt``."""
    root = tmp_path / "images"
    exts = [".png", ".jpg", ".tif", ".bmp", ".webp"]
    for c, cls in enumerate(["dog", "cat", "bird"]):
        (root / cls).mkdir(parents=True)
        for i, ext in enumerate(exts):
            size = (16, 10) if (cls, i) == ("dog", 0) else (12, 12)
            save_image(root / cls / f"{i}{ext}", size=size, seed=10 * c + i)
    (root / "cat" / "broken.png").write_bytes(np.random.default_rng(5).bytes(300))
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def split_folder(tmp_path) -> Path:
    """root/train/{a,b} (10 each) and root/test/{a,b} (3 each), grey PNG and TIFF 8×8."""
    root = tmp_path / "splits"
    for split, n in (("train", 10), ("test", 3)):
        for c, cls in enumerate(["a", "b"]):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                ext = ".tif" if i % 2 else ".png"
                save_image(root / split / cls / f"{i}{ext}", (8, 8), "L", seed=100 * c + i)
    return root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a folder; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def idx_writer():
    """The :func:`write_idx` helper, for tests that build their own IDX files."""
    return write_idx


@pytest.fixture
def image_writer():
    """The :func:`save_image` helper, for tests that build their own image folders."""
    return save_image
