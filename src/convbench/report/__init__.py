"""Comparison reports: one self-contained HTML page plus Markdown, CSV and JSON tables.

The report reads stored run dicts only (``Store.get_run``), so any comparison can be
re-made later, on another machine.

>>> from convbench.report import summary_table, write_report
>>> from convbench.store import Store                                        # doctest: +SKIP
>>> store = Store("convbench-runs/runs.db")                                   # doctest: +SKIP
>>> paths = write_report([store.get_run(i) for i in (1, 2)], "report.html")  # doctest: +SKIP
>>> sorted(paths)                                                             # doctest: +SKIP
['csv', 'html', 'json', 'md']

``convbench.report.html`` holds the reusable page, table and figure building blocks.
"""

from .summary import summary_table
from .writer import ReportError, write_report

__all__ = ["ReportError", "summary_table", "write_report"]
