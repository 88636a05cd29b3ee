"""The data-set registry and the facts each source publishes for ``convbench datasets``.

A source is a function ``(cfg, seed) -> RawData`` wrapped in a :class:`Source` that also knows
how to find its files without reading them (for a fast listing) and how a user gets them.

>>> from convbench.data import DATASETS
>>> "digits" in DATASETS
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..config import DataConfig
from ..errors import DataError
from ..registry import Registry
from .bundle import RawData

LoadFn = Callable[[DataConfig, int], RawData]
LocateFn = Callable[[str | None], "Path | str | None"]


@dataclass(frozen=True)
class Source:
    """One registered data set: the loader plus static facts for listings."""

    name: str
    load: LoadFn
    description: str
    how_to_get: str
    classes: int | None = None
    image_shape: tuple[int, int, int] | None = None  # (C, H, W)
    train_size: int | None = None
    test_size: int | None = None
    # Finds the data without loading it (a path or a word like "scikit-learn"); None = absent.
    locate: LocateFn | None = None
    # Facts only known once the data is found (e.g. the class count of a user's folder).
    inspect: Callable[[str | None], dict] | None = None

    def __call__(self, cfg: DataConfig, seed: int) -> RawData:
        return self.load(cfg, seed)


DATASETS: Registry[Source] = Registry("dataset", listing="convbench datasets")


def register_source(name: str, **facts) -> Callable[[LoadFn], LoadFn]:
    """Decorator: register ``fn(cfg, seed) -> RawData`` as data set ``name`` with its facts."""

    def deco(fn: LoadFn) -> LoadFn:
        DATASETS.register(name)(Source(name=name, load=fn, **facts))
        return fn

    return deco


def cache_root() -> Path:
    """Where downloads go: ``$XDG_CACHE_HOME/convbench`` or ``~/.cache/convbench``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "convbench"


def search_dirs(data_dir: str | None, subdirs: Iterable[str],
                extra: Iterable[str | Path] = ()) -> list[Path]:
    """Folders to look in, in order: ``data_dir``, ``$CONVBENCH_DATA`` (each itself and each
    ``<dir>/<subdir>``), the cache, then ``extra`` (system locations).

    >>> [str(p) for p in search_dirs("/tmp", ["mnist"], extra=["/usr/x"])][:2]
    ['/tmp', '/tmp/mnist']
    """
    subdirs = list(subdirs)
    bases: list[Path] = []
    if data_dir:
        if not Path(data_dir).expanduser().is_dir():
            # Skipping it would quietly train on files found elsewhere (the cache, Debian's).
            raise DataError(f"--data-dir {data_dir!r} is not a folder. Check the path.")
        bases.append(Path(data_dir).expanduser())
    env = os.environ.get("CONVBENCH_DATA", "")
    bases += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    dirs: list[Path] = []
    for base in bases:
        dirs.append(base)
        dirs += [base / s for s in subdirs]
    dirs.append(cache_root() / subdirs[0])
    dirs += [Path(p) for p in extra]
    seen: set[Path] = set()
    return [d for d in dirs if not (d in seen or seen.add(d))]


def missing_error(name: str, looked: list[Path], how_to_get: str) -> DataError:
    """The error for a data set that is nowhere to be found: where we looked and what to do."""
    where = ", ".join(str(p) for p in looked)
    return DataError(f"Data set {name!r} not found; looked in: {where}.\n"
                     f"To get it: {how_to_get}.")
