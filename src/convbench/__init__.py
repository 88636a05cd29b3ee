"""convbench: design, train, compare and tune convolutional networks on modest hardware.

The Python API has the command line's names; each returns what the command prints (a stored
:class:`Run`, a :class:`Group` of runs, a result dict, or files written):

>>> import convbench
>>> cfg = convbench.config.build({"model": {"name": "B2FL16"}, "train": {"epochs": 2}})
>>> cfg.train.epochs, convbench.replace(cfg, {"train.epochs": 3}).train.epochs
(2, 3)
>>> run = convbench.train(cfg, store="runs.db")                                # doctest: +SKIP
>>> group = convbench.compare(cfg, models=["B2FL8", "B2FL16"], seeds=[0, 1],
...                           store="runs.db", report="out/report.html")      # doctest: +SKIP
>>> convbench.report([r["id"] for r in group.runs], "out/again.html")        # doctest: +SKIP
>>> from convbench.training.lr_finder import make_spec                        # doctest: +SKIP
>>> bounds = convbench.lr_find(cfg, make_spec(max_lr=1), store="runs.db")     # doctest: +SKIP
>>> result = convbench.search("examples/digits-screen-search.yaml", workers=2)  # doctest: +SKIP
>>> feats, path = convbench.features(convbench.Store("runs.db"), run=run.id,
...                                  out="feats.npz")                         # doctest: +SKIP
>>> convbench.svm("feats.npz", store="runs.db").metrics["test_accuracy"]     # doctest: +SKIP
0.93
>>> convbench.detect.train("examples/detect-synth.yaml", store="runs.db")    # doctest: +SKIP
>>> convbench.predict(run.id, ["shoe.png"], store="runs.db")                 # doctest: +SKIP
>>> convbench.evaluate(run.id, "fashion-mnist", store="runs.db")             # doctest: +SKIP
>>> convbench.export(run.id, "onnx", store="runs.db")                        # doctest: +SKIP
>>> convbench.Store("runs.db").list_runs(status="completed")                 # doctest: +SKIP

Everything but ``config`` is imported on first use (PEP 562), so ``import convbench`` and
``convbench --help`` stay quick; ``dir(convbench)`` and ``__all__`` list it all.
"""

import os as _os
import sys as _sys
import types as _types
from importlib import import_module as _import_module

# OpenMP worker threads (torch, MKL, oneDNN) spin for a while when they wait at a barrier. On a
# small machine shared with another heavy process (a second run, a search worker, the test
# suite) those spinning threads take the cores the other process needs, and both collapse:
# custom-cnn trained at 30-49 img/s beside other torch work with the default policy and at
# 590-1,920 img/s with PASSIVE (docs/training.md, "Sharing the cores"). Set before torch is
# imported, which is when libgomp reads it; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from . import config  # noqa: E402
from .config import RunConfig, replace  # noqa: E402
from .errors import ConvbenchError  # noqa: E402

# Public name → (module, attribute); None: the module itself is the namespace.
_API: dict[str, tuple[str, str | None]] = {
    "train": ("convbench.training", "train"),
    "compare": ("convbench.compare", None),  # callable: convbench.compare(...) (see below)
    "report": ("convbench.report", None),  # callable: ids → the report of their kind
    "lr_find": ("convbench.training.lr_finder", "lr_find"),
    "search": ("convbench.search", None),  # callable
    "features": ("convbench.analysis.features", "extract_features"),
    "svm": ("convbench.analysis.svm", "svm_run"),
    "detect": ("convbench.detection.api", None),  # detect.train / eval / predict / compare
    "Store": ("convbench.store", "Store"),
    "Run": ("convbench.results", "Run"),
    "Group": ("convbench.results", "Group"),
    # using a trained run (convbench predict / evaluate / export)
    "predict": ("convbench.inference", "predict"),
    "evaluate": ("convbench.inference", "evaluate"),
    "export": ("convbench.inference", "export"),
}

__all__ = ["ConvbenchError", "Group", "Run", "RunConfig", "Store", "__version__", "compare",
           "config", "detect", "evaluate", "export", "features", "lr_find", "predict",
           "replace", "report", "search", "svm", "train"]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'convbench' has no attribute {name!r}")
    module, attribute = _API[name]
    value = _import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _EntryModule(_types.ModuleType):
    """A submodule that is also an entry point of the same name: ``convbench.compare(...)``
    calls ``convbench.compare.compare`` (likewise ``search`` and ``report``), while
    ``import convbench.report.html`` and ``convbench.compare.collect_runs`` keep working as
    for any module."""

    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(_types.ModuleType):
    """Makes the submodules that share an entry point's name callable the moment they are
    set on the package, however they were imported (``import convbench.compare`` first, or
    ``convbench.compare`` through :func:`__getattr__`)."""

    def __setattr__(self, name: str, value) -> None:
        if name in _ENTRY_MODULES and isinstance(value, _types.ModuleType):
            value.__class__ = _EntryModule
        super().__setattr__(name, value)


_ENTRY_MODULES = ("compare", "report", "search")
_sys.modules[__name__].__class__ = _Package
