"""User-facing errors.

Every error a user can cause is a :class:`ConvbenchError`; the CLI prints its message on one
or two lines and exits with status 2, without a traceback.  Messages say what was wrong,
what was expected and what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConvbenchError(Exception):
    """Base class of errors caused by user input (names, values, files)."""

    exit_code = 2


class ConfigError(ConvbenchError):
    """An invalid configuration value, YAML file or ``--set`` override."""


class UnknownNameError(ConvbenchError):
    """A name (data set, model, optimiser, schedule, …) that no registry knows."""


class DataError(ConvbenchError):
    """Missing, truncated or corrupt data."""


class StoreError(ConvbenchError):
    """A run store that cannot be opened, or a run id that does not exist."""


class WeightsError(ConvbenchError):
    """A weights file that is missing or does not fit the architecture."""


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``name`` (for "did you mean" hints).

    >>> closest("resnt20", ["resnet20", "resnet32", "vgg11"])[0]
    'resnet20'
    """
    known = list(known)
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    if not hits:
        hits = [k for k in lowered if name.lower() in k or k in name.lower()][:n]
    return [lowered[h] for h in hits]


def unknown_name(kind: str, name: str, known: Iterable[str], listing: str | None = None):
    """Build an :class:`UnknownNameError` that suggests the closest known names."""
    known = sorted(known)
    near = closest(name, known)
    hint = f" Did you mean {', '.join(repr(x) for x in near)}?" if near else ""
    where = f" Run `{listing}` to list them." if listing else f" Known: {', '.join(known)}."
    return UnknownNameError(f"Unknown {kind} {name!r}.{hint}{where}")
