"""Reports: building blocks plus one writer per kind, looked up by what is reported.

Blocks: :mod:`~convbench.report.html` (page, table, figure, :class:`~.html.Cell`),
:mod:`~convbench.report.columns` (the column model), :mod:`~convbench.report.plots`
(figures), :mod:`~convbench.report.exports` (CSV, Markdown, JSON), :mod:`~.fmt` (units).
Writers (:mod:`convbench.report.writers`): the classification comparison, the detection
comparison, the search and the analysis page; :func:`write` picks one by the kind of the
runs and their group. Reports read stored run dicts only (``Store.get_run``), so any of them
can be re-made later, on another machine.

>>> from convbench.report import summary_table, write_report
>>> from convbench.store import Store                                        # doctest: +SKIP
>>> store = Store("convbench-runs/runs.db")                                   # doctest: +SKIP
>>> paths = write_report([store.get_run(i) for i in (1, 2)], "report.html")  # doctest: +SKIP
>>> sorted(paths)                                                             # doctest: +SKIP
['csv', 'html', 'json', 'md']
"""

from .summary import summary_table
from .writer import ReportError, check_report_path
from .writers import report, report_kind, report_kinds, write
from .writers.classification import write_report

__all__ = ["ReportError", "check_report_path", "report", "report_kind", "report_kinds",
           "summary_table", "write", "write_report"]
