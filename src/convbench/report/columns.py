"""The column model of every report table: which value, how it is shown, which way is better.

A :class:`Column` names a key, a label, a formatter and a best rule; :func:`value_cell`
turns one value into the cell a table shows. :data:`COLUMNS` are the classification
comparison's metric columns (means over seeds): the HTML, Markdown and CSV exports all read
that one list, so they show the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import fmt
from .html import Cell


@dataclass(frozen=True)
class Column:
    """One column; ``best`` is "max", "min" or None (not ranked); ``format`` None shows the
    value as the table shows plain values."""

    key: str
    label: str
    format: Callable[[float | None], str] | None = None
    best: str | None = None
    optional: bool = False  # shown only when some variant has a value
    quality: bool = False  # shown as mean ± std over seeds (costs: mean, spread in tooltip)
    show_median: bool = False


COLUMNS: list[Column] = [
    Column("test_accuracy", "Test accuracy", fmt.percent, "max", quality=True, show_median=True),
    Column("test_top5", "Top-5", fmt.percent, "max", quality=True),
    Column("macro_f1", "Macro-F1", fmt.plain, "max", quality=True),
    Column("best_val_accuracy", "Best val. accuracy", fmt.percent, "max", quality=True),
    Column("epochs_run", "Epochs", fmt.integer, None),
    Column("params_total", "Parameters", fmt.count, "min"),
    Column("params_trainable", "Trainable", fmt.count, "min"),
    Column("flops", "FLOPs / image", fmt.count, "min"),
    Column("macs", "MACs / image", fmt.count, "min"),
    Column("disk_bytes", "Disk size", fmt.size_bytes, "min"),
    Column("peak_memory_bytes", "Peak memory", fmt.size_bytes, "min"),
    Column("train_time_s", "Train time", fmt.duration, "min"),
    # Only measured when measure.target_accuracy is set.
    Column("time_to_target_s", "Time to target", fmt.duration, "min", optional=True),
    # Without one: time to the lowest best validation accuracy of the compared runs.
    Column("time_to_common_target_s", "Time to common target", fmt.duration, "min",
           optional=True),
    Column("latency_ms", "Latency (batch 1)", fmt.milliseconds, "min"),
    Column("throughput_ips", "Throughput (img/s)", fmt.count, "max"),
    Column("energy_j", "Energy", fmt.energy_j, "min"),
    Column("cost", "Cost", fmt.sig, "min"),
    Column("co2_g", "CO₂ (g)", fmt.sig, "min", optional=True),
]


def value_cell(column: Column, value: Any) -> Any:
    """The cell of one plain value: a :class:`Cell` through the column's formatter (ranked by
    the number), or the value itself without one.

    >>> value_cell(Column("t", "Time", fmt.duration, "min"), 90.0)
    Cell(value=90.0, text='90 s', sub='', title='', swatch='')
    >>> value_cell(Column("n", "Name"), "a")
    'a'
    """
    if column.format is None:
        return value
    return Cell(fmt.number(value), column.format(value))


def visible_columns(rows: list[dict]) -> list[Column]:
    """The fixed columns, plus optional ones some row has a value for (HTML and Markdown;
    the CSV keeps every column so that scripts can rely on its header)."""
    return [
        c
        for c in COLUMNS
        if not c.optional or any(_stat(r, c.key, "mean") is not None for r in rows)
    ]


def _stat(row: dict, key: str, stat: str) -> float | None:
    return fmt.number(((row.get("metrics") or {}).get(key) or {}).get(stat))


ESTIMATED = ("energy_j", "cost", "co2_g")  # all derived from the energy estimate


def cell_text(row: dict, column: Column) -> tuple[str, str]:
    """The shown text and the smaller second line (median and seeds) of a cell.

    >>> row = {"metrics": {"test_accuracy": {"mean": 0.9, "std": 0.01, "median": 0.91, "n": 3}}}
    >>> cell_text(row, COLUMNS[0])
    ('90.0 ± 1.0 %', 'median 91.0 % · 3 seeds')
    """
    mean = _stat(row, column.key, "mean")
    if mean is None:
        return fmt.MISSING, ""
    std, n = _stat(row, column.key, "std"), _stat(row, column.key, "n") or 0
    if not std or not column.quality:
        text = column.format(mean)
    elif column.format is fmt.percent:
        text = f"{fmt.percent_points(mean)} ± {fmt.percent_points(std)} %"
    else:
        text = f"{column.format(mean)} ± {column.format(std)}"
    if column.key in ESTIMATED and row.get("energy_estimated"):
        text += " (est.)"
    sub = ""
    if column.show_median and n > 1:
        sub = f"median {column.format(_stat(row, column.key, 'median'))} · {int(n)} seeds"
    return text, sub


def cell(row: dict, column: Column) -> Cell:
    """The HTML cell of a variant's metric (mean compared for best marking)."""
    text, sub = cell_text(row, column)
    stats = (row.get("metrics") or {}).get(column.key) or {}
    title = ""
    if (stats.get("n") or 0) > 1:
        title = (
            f"mean {column.format(stats.get('mean'))}, std {column.format(stats.get('std'))}, "
            f"median {column.format(stats.get('median'))}, n = {stats.get('n')}"
        )
    return Cell(_stat(row, column.key, "mean"), text, sub=sub, title=title)
