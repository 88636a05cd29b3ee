"""MNIST-style IDX files (gzipped or not) and the ``mnist`` / ``fashion-mnist`` sources.

The IDX format is a 4-byte magic (0, 0, type code, number of dims), one big-endian uint32
per dimension, then the raw values; we parse it with numpy in one ``frombuffer`` call.

>>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
(10000,)
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..errors import DataError
from .bundle import RawData
from .download import fetch
from .sources import cache_root, missing_error, register_source, search_dirs

_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}

# Module-level so a mirror (or a test server) can be substituted.
URLS = {"fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/"}
SYSTEM_DIRS: dict[str, list[str]] = {"fashion-mnist": ["/usr/share/datasets/fashion-mnist"]}
SUBDIRS = {"fashion-mnist": ["fashion-mnist", "FashionMNIST/raw"], "mnist": ["mnist", "MNIST/raw"]}

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(i) for i in range(10)]


def _corrupt(path: Path, what: str) -> DataError:
    return DataError(f"{path}: {what}. The file is damaged: delete it and download it again "
                     "(--download) or reinstall its package.")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain or gzip) into a numpy array of its declared shape.

    >>> read_idx("train-labels-idx1-ubyte.gz").dtype  # doctest: +SKIP
    dtype('uint8')
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}). "
                        "Check that it exists and is readable.") from None
    if data[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            data = gzip.decompress(data)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise _corrupt(path, f"truncated or corrupt gzip data ({err})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise _corrupt(path, "not an IDX file (bad magic number)")
    ndim, dtype = data[3], _TYPES[data[2]]
    header = 4 + 4 * ndim
    if ndim > 4:  # images are 3-D and labels 1-D: a larger count is not IDX, just bytes
        raise _corrupt(path, f"not an IDX file (header claims {ndim} dimensions)")
    if ndim == 0 or len(data) < header:
        raise _corrupt(path, "truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise _corrupt(path, f"IDX header promises {expected} bytes of data for shape {dims} "
                             f"but the file holds {len(data) - header} (truncated)")
    return np.frombuffer(data, dtype, offset=header).reshape(dims)


def _find_file(folder: Path, base: str) -> Path | None:
    for name in (base + ".gz", base):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx_dirs(name: str, data_dir: str | None) -> list[Path]:
    return search_dirs(data_dir, SUBDIRS[name], extra=SYSTEM_DIRS.get(name, []))


def locate_idx(name: str, data_dir: str | None) -> Path | None:
    """The first folder holding all four IDX files of ``name``, without reading them."""
    for folder in _idx_dirs(name, data_dir):
        if all(_find_file(folder, base) for base in FILES.values()):
            return folder
    return None


def _download(name: str) -> Path:
    folder = cache_root() / SUBDIRS[name][0]
    for base in FILES.values():
        if _find_file(folder, base) is None:
            fetch(URLS[name] + base + ".gz", folder / (base + ".gz"))
    return folder


def _how_to_get(name: str) -> str:
    how = [f"`--download` (fetches from {URLS[name]} into {cache_root() / SUBDIRS[name][0]})",
           "or `--data-dir DIR` with the four IDX files (train-images-idx3-ubyte.gz, …)"]
    if name == "fashion-mnist":
        how.insert(0, "`apt-get install dataset-fashion-mnist`,")
    return " ".join(how)


def load_idx_source(name: str, classes: list[str], cfg: DataConfig) -> RawData:
    """Find (or download) the IDX files of ``name`` and read them into a :class:`RawData`."""
    folder = locate_idx(name, cfg.data_dir)
    notes = []
    if folder is None:
        if not cfg.download:
            raise missing_error(name, _idx_dirs(name, cfg.data_dir), _how_to_get(name))
        folder = _download(name)
        notes.append(f"{name}: downloaded from {URLS[name]}")
    arrays = {}
    for key, base in FILES.items():
        path = _find_file(folder, base)
        assert path is not None  # located or just downloaded
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0] or x.dtype != np.uint8:
            raise DataError(f"{folder}: {split} images {x.shape} and labels {y.shape} do not "
                            "match (expected N×H×W uint8 and N labels). Re-download the files.")
        if y.size and int(y.max()) >= len(classes):
            raise DataError(f"{folder}: {split} label {int(y.max())} is out of range for "
                            f"{len(classes)} classes. Re-download the files.")
    notes.insert(0, f"{name}: read from {folder}")
    return RawData(x_train=arrays["x_train"][:, None], y_train=arrays["y_train"].astype(np.int64),
                   x_test=arrays["x_test"][:, None], y_test=arrays["y_test"].astype(np.int64),
                   classes=list(classes), location=str(folder), notes=notes)


_FACTS = dict(classes=10, image_shape=(1, 28, 28), train_size=60000, test_size=10000)


@register_source("fashion-mnist", description="Zalando Fashion-MNIST: grey photos of clothes",
                 how_to_get=_how_to_get("fashion-mnist"),
                 locate=lambda d: locate_idx("fashion-mnist", d), **_FACTS)
def load_fashion_mnist(cfg: DataConfig, seed: int) -> RawData:
    """Fashion-MNIST from IDX files (Debian's dataset-fashion-mnist, the cache or --data-dir)."""
    return load_idx_source("fashion-mnist", FASHION_CLASSES, cfg)


@register_source("mnist", description="MNIST handwritten digits", how_to_get=_how_to_get("mnist"),
                 locate=lambda d: locate_idx("mnist", d), **_FACTS)
def load_mnist(cfg: DataConfig, seed: int) -> RawData:
    """MNIST from IDX files (the cache, $CONVBENCH_DATA or --data-dir)."""
    return load_idx_source("mnist", MNIST_CLASSES, cfg)
