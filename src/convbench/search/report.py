"""The search report lives in :mod:`convbench.report.writers.search` (one writer per kind);
this name stays for code that imports it from here."""

from ..report.writers.search import write_search_report

__all__ = ["write_search_report"]
