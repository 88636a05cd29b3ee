"""Turn Python values into what a JSON column can hold, and merge JSON documents.

Non-finite floats (NaN, +inf, -inf) are stored as ``None`` (JSON ``null``): JSON has no
spelling for them, PostgreSQL rejects them, and a diverged metric is unusable anyway — the
run's status ``"diverged"`` records why it is missing.  NumPy and PyTorch scalars and arrays
become plain numbers and lists, paths become strings and mapping keys become strings (as JSON
would make them), so every value written reads back equal on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any


def to_json(value: Any, where: str = "value") -> Any:
    """A copy of ``value`` made of dicts, lists, str, int, finite float, bool and None.

    ``where`` names the value in the error raised for a type JSON cannot hold.

    >>> to_json({"loss": float("nan"), "acc": 0.5, "sizes": (1, 2)})
    {'loss': None, 'acc': 0.5, 'sizes': [1, 2]}
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, PurePath):
        return str(value)
    # NumPy / PyTorch scalars and arrays all offer tolist(), which yields Python numbers.
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return to_json(tolist(), where)
    raise TypeError(
        f"Cannot store {where} of type {type(value).__name__} in the run store; "
        "use numbers, strings, booleans, None, lists or dicts."
    )


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``update``; nested dicts are merged key by key, not replaced.

    >>> merge({"test": {"acc": 0.9}, "epochs": 3}, {"test": {"loss": 0.3}, "epochs": 4})
    {'test': {'acc': 0.9, 'loss': 0.3}, 'epochs': 4}
    """
    out = dict(base)
    for key, value in update.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge(old, value)
        else:
            out[key] = value
    return out
