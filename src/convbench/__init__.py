"""convbench: design, train, compare and tune convolutional networks on modest hardware.

>>> import convbench
>>> cfg = convbench.config.build({"model": {"name": "B2FL16"}, "train": {"epochs": 2}})
>>> cfg.train.epochs
2
"""

__version__ = "0.1.0"

from . import config  # noqa: E402
from .config import RunConfig  # noqa: E402
from .errors import ConvbenchError  # noqa: E402


def __getattr__(name: str):
    # Heavy modules (torch, models) load on first use so `convbench --help` stays instant.
    if name in ("train", "Run"):
        from . import training as _train
        return getattr(_train, name)
    if name == "Store":
        from .store import Store
        return Store
    raise AttributeError(f"module 'convbench' has no attribute {name!r}")


__all__ = ["ConvbenchError", "RunConfig", "Run", "Store", "config", "train", "__version__"]
