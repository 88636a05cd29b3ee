"""CIFAR-10 / CIFAR-100 from the official "python version" batches, read without trusting pickle.

The batches are pickled dicts of numpy arrays.  ``pickle.load`` could run any code a hostile
file names, so :class:`SafeUnpickler` resolves only numpy array/dtype reconstruction and
plain builtin containers; anything else fails with a :class:`DataError`.

>>> load_batch("cifar-10-batches-py/test_batch")[b"data"].shape  # doctest: +SKIP
(10000, 3072)
"""

from __future__ import annotations

import builtins
import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DataConfig
from ..errors import DataError
from .bundle import RawData
from .download import fetch, safe_extract_tar
from .sources import cache_root, missing_error, register_source, search_dirs


def _safe_dtype(*args: Any) -> np.dtype:
    dt = np.dtype(*args)
    if dt.hasobject:  # an object array would be rebuilt from raw pointers
        raise pickle.UnpicklingError("object arrays are not allowed")
    return dt


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Python 3 pickles bytes at protocol 2 as _codecs.encode(text, "latin1").
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed")
    return codecs.encode(text, encoding)


# Take numpy's own reconstruction helpers from a live array, whatever numpy version is installed.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_SCALAR = np.float64(0).__reduce__()[0]

_ALLOWED: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray,
                                        ("numpy", "dtype"): _safe_dtype,
                                        ("_codecs", "encode"): _latin1_encode}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _RECONSTRUCT
    _ALLOWED[(f"{_mod}.multiarray", "scalar")] = _SCALAR
    _ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _FROMBUFFER
for _mod in ("builtins", "__builtin__"):
    for _name in ("list", "dict", "tuple", "set", "frozenset", "bytes", "bytearray", "str",
                  "int", "float", "complex", "bool"):
        _ALLOWED[(_mod, _name)] = getattr(builtins, _name)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays and builtin containers."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def load_batch(path: str | Path) -> dict:
    """Read one CIFAR python batch (or meta) file with the restricted unpickler.

    >>> sorted(load_batch("cifar-10-batches-py/batches.meta"))  # doctest: +SKIP
    [b'label_names', b'num_cases_per_batch', b'num_vis']
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, encoding="bytes").load()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}). "
                        "Check that it exists and is readable.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError) as err:
        raise DataError(f"{path}: truncated, corrupt or not a CIFAR batch ({err}). Delete the "
                        "folder and download it again (--download).") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict (a CIFAR batch), got "
                        f"{type(obj).__name__}. Check the data folder.")
    return obj


def _get(d: dict, key: bytes, path: Path) -> Any:
    if key not in d:
        raise DataError(f"{path}: has no {key.decode()!r} entry; not a CIFAR batch of this kind. "
                        "Check the data folder.")
    return d[key]


def _images_labels(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    d = load_batch(path)
    data = _get(d, b"data", path)
    labels = np.asarray(_get(d, label_key, path))
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],)
            or not np.issubdtype(labels.dtype, np.integer)):
        raise DataError(f"{path}: expected data N×3072 uint8 and N integer labels, got "
                        f"{getattr(data, 'shape', '?')} and {labels.shape}. Re-download.")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _names(meta: dict, key: bytes, path: Path) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in _get(meta, key, path)]


URLS = {"cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"}
LAYOUT = {"cifar10": ("cifar-10-batches-py",
                      [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
          "cifar100": ("cifar-100-python", ["train", "test", "meta"])}
SUBDIRS = {"cifar10": ["cifar10", "cifar-10"], "cifar100": ["cifar100", "cifar-100"]}


def _dirs(name: str, data_dir: str | None) -> list[Path]:
    inner = LAYOUT[name][0]
    out = []
    for d in search_dirs(data_dir, SUBDIRS[name]):
        out += [d / inner, d]
    return out


def locate_cifar(name: str, data_dir: str | None) -> Path | None:
    """The first folder holding every batch file of ``name``, without reading them."""
    files = LAYOUT[name][1]
    for folder in _dirs(name, data_dir):
        if all((folder / f).is_file() for f in files):
            return folder
    return None


def _how_to_get(name: str) -> str:
    return (f"`--download` (fetches {URLS[name]} into {cache_root() / SUBDIRS[name][0]}), or "
            f"`--data-dir DIR` where DIR holds {LAYOUT[name][0]}/ from that archive")


def _find_or_download(name: str, cfg: DataConfig, notes: list[str]) -> Path:
    folder = locate_cifar(name, cfg.data_dir)
    if folder is not None:
        return folder
    if not cfg.download:
        raise missing_error(name, _dirs(name, cfg.data_dir), _how_to_get(name))
    dest = cache_root() / SUBDIRS[name][0]
    archive = fetch(URLS[name], dest / URLS[name].rsplit("/", 1)[1])
    safe_extract_tar(archive, dest)
    archive.unlink()
    notes.append(f"{name}: downloaded from {URLS[name]}")
    folder = locate_cifar(name, str(dest))
    if folder is None:
        raise DataError(f"{archive}: the archive did not contain {LAYOUT[name][0]}/. "
                        "Download it by hand and pass --data-dir.")
    return folder


def _check_labels(y: np.ndarray, classes: list[str], folder: Path) -> None:
    if y.size and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise DataError(f"{folder}: labels outside 0..{len(classes) - 1}. Re-download the data.")


@register_source("cifar10", description="CIFAR-10: 32×32 colour photos, 10 classes",
                 how_to_get=_how_to_get("cifar10"), classes=10, image_shape=(3, 32, 32),
                 train_size=50000, test_size=10000, locate=lambda d: locate_cifar("cifar10", d))
def load_cifar10(cfg: DataConfig, seed: int) -> RawData:
    """CIFAR-10 from ``cifar-10-batches-py`` (data_batch_1..5, test_batch, batches.meta)."""
    notes: list[str] = []
    folder = _find_or_download("cifar10", cfg, notes)
    classes = _names(load_batch(folder / "batches.meta"), b"label_names", folder / "batches.meta")
    parts = [_images_labels(folder / f"data_batch_{i}", b"labels") for i in range(1, 6)]
    x_test, y_test = _images_labels(folder / "test_batch", b"labels")
    y_train = np.concatenate([p[1] for p in parts])
    for y in (y_train, y_test):
        _check_labels(y, classes, folder)
    return RawData(x_train=np.concatenate([p[0] for p in parts]), y_train=y_train,
                   x_test=x_test, y_test=y_test, classes=classes, location=str(folder),
                   notes=[f"cifar10: read from {folder}", *notes])


@register_source("cifar100", description="CIFAR-100: 32×32 colour photos, 100 fine or 20 "
                 "coarse classes (data.label_mode)", how_to_get=_how_to_get("cifar100"),
                 classes=100, image_shape=(3, 32, 32), train_size=50000, test_size=10000,
                 locate=lambda d: locate_cifar("cifar100", d))
def load_cifar100(cfg: DataConfig, seed: int) -> RawData:
    """CIFAR-100 from ``cifar-100-python`` (train, test, meta); ``cfg.label_mode`` fine/coarse."""
    notes: list[str] = []
    folder = _find_or_download("cifar100", cfg, notes)
    mode = cfg.label_mode.encode()
    classes = _names(load_batch(folder / "meta"), mode + b"_label_names", folder / "meta")
    x_train, y_train = _images_labels(folder / "train", mode + b"_labels")
    x_test, y_test = _images_labels(folder / "test", mode + b"_labels")
    for y in (y_train, y_test):
        _check_labels(y, classes, folder)
    return RawData(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   classes=classes, location=str(folder),
                   notes=[f"cifar100: read from {folder} ({cfg.label_mode} labels)", *notes])
