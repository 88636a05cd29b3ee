"""Which config fields and environment entries differ between runs."""

from __future__ import annotations

import json
from typing import Any


def flatten(data: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"dotted.path": value}``; lists stay whole values.

    >>> flatten({"optim": {"name": "adam", "betas": [0.9, 0.999]}, "name": None})
    {'optim.name': 'adam', 'optim.betas': [0.9, 0.999], 'name': None}
    """
    out: dict[str, Any] = {}
    for key, value in (data or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def canonical(value: Any) -> str:
    """A hashable, order-stable spelling of a config value (for comparisons and display).

    >>> canonical([1, 2]), canonical("adam"), canonical(None)
    ('[1, 2]', 'adam', 'null')
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _exact(value: Any) -> str:
    # Unlike canonical(), keeps "1" and 1 apart.
    return json.dumps(value, sort_keys=True, default=str)


def differing_fields(flat_configs: list[dict[str, Any]]) -> list[str]:
    """Dotted paths whose value is not the same in every config (missing counts as a value).

    Order follows the first config that has the path, so sections stay together.

    >>> differing_fields([{"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 0}])
    ['b', 'c']
    """
    paths: list[str] = []
    seen: set[str] = set()
    for flat in flat_configs:
        for path in flat:
            if path not in seen:
                seen.add(path)
                paths.append(path)
    missing = object()
    return [
        p
        for p in paths
        if len({_exact(f[p]) if p in f else missing for f in flat_configs}) > 1
    ]


def split_environment(envs: list[dict[str, Any] | None]) -> tuple[dict[str, Any], list[str]]:
    """Environment entries shared by every run, and the keys whose values differ.

    >>> split_environment([{"torch": "2.4", "threads": 2}, {"torch": "2.4", "threads": 4}])
    ({'torch': '2.4'}, ['threads'])
    """
    flats = [flatten(env or {}) for env in envs]
    differ = differing_fields(flats)
    shared = {k: v for k, v in (flats[0] if flats else {}).items() if k not in differ}
    return shared, differ
