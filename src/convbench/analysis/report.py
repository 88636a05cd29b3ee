"""The analysis page lives in :mod:`convbench.report.writers.analysis` (one writer per kind);
this name stays for code that imports it from here."""

from ..report.writers.analysis import write_analysis_report

__all__ = ["write_analysis_report"]
