"""A tiny name → factory registry, used for data sets, models, optimisers, schedules, pruners.

Registries rather than if-chains: adding a model is adding one decorated function.

>>> r = Registry("colour", listing="convbench colours")
>>> @r.register("red")
... def make_red():
...     return "#f00"
>>> r.get("red")()
'#f00'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import unknown_name

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    def __init__(self, kind: str, listing: str | None = None):
        self.kind = kind
        self.listing = listing
        self._items: dict[str, F] = {}

    def register(self, *names: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            for name in names:
                if name in self._items:
                    raise ValueError(f"{self.kind} {name!r} registered twice")
                self._items[name] = fn
            return fn

        return deco

    def get(self, name: str) -> F:
        try:
            return self._items[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._items, self.listing) from None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> list[str]:
        return list(self._items)
