"""Cheap hyper-parameter exploration: search spaces, strategies (grid, random, TPE and the
study's LR-range-test screening), pruners, resumable multi-process runs and the audit that
measures how far an early verdict can be trusted.

>>> from convbench.search import search                                    # doctest: +SKIP
>>> result = search("examples/digits-screen-search.yaml", workers=2, audit=True,
...                 report="out/search.html")                               # doctest: +SKIP
>>> result["audit"]["spearman"]                                             # doctest: +SKIP
0.83
"""

from .runner import SearchError, search
from .space import SearchSpec, load, parse

__all__ = ["SearchError", "SearchSpec", "load", "parse", "search"]
