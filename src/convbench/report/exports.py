"""Exports beside a report page: CSV and JSON with raw numbers, Markdown with the page's text.

CSV and JSON carry raw numbers in SI units (seconds, bytes, joules, fractions) for further
analysis; Markdown carries the same human-friendly text as the HTML table. Every writer
builds its exports from these blocks.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from .configdiff import canonical
from .html import best_values, cell_number, cell_text, column_pairs


def csv_table(header: list[str], lines: list[list[Any]]) -> str:
    """CSV text: a header line, then one line per row; missing and non-finite numbers are
    empty, lists and dicts are written as JSON.

    >>> print(csv_table(["a", "b"], [[1, None], [float("nan"), [1, 2]]]), end="")
    a,b
    1,
    ,"[1, 2]"
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for line in lines:
        writer.writerow([_csv_value(v) for v in line])
    return out.getvalue()


def json_text(data: Any) -> str:
    """Strict JSON (NaN and inf as null), indented, with a final newline.

    >>> json_text({"a": float("nan")})
    '{\\n  "a": null\\n}\\n'
    """
    return json.dumps(clean_json(data), indent=2, default=str, allow_nan=False) + "\n"


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, list | dict):
        return canonical(value)
    return value


def _md(text: Any) -> str:
    # A pipe would end the cell; newlines would end the row.
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], lines: list[list[str]], right_from: int = 1) -> str:
    """A GitHub-flavoured Markdown table; columns from ``right_from`` on are right-aligned.

    >>> print(markdown_table(["Model", "Acc"], [["a", "90 %"]]))
    | Model | Acc |
    | :-- | --: |
    | a | 90 % |
    """
    align = [":--" if i < right_from else "--:" for i in range(len(header))]
    out = ["| " + " | ".join(_md(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(_md(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def table_markdown(columns: list[Any], rows: list[dict],
                   best: dict[str, str] | None = None) -> str:
    """What :func:`~convbench.report.html.table` shows, as Markdown, best cells in bold.

    >>> print(table_markdown([("m", "Model"), ("t", "Time")], [{"m": "a", "t": 3},
    ...                      {"m": "b", "t": 5}], best={"t": "min"}))
    | Model | Time |
    | :-- | --: |
    | a | **3** |
    | b | 5 |
    """
    columns, best = column_pairs(columns, best)
    targets = best_values(columns, rows, best)
    lines = []
    for row in rows:
        line = []
        for key, _ in columns:
            text = cell_text(row.get(key))
            is_best = key in targets and cell_number(row.get(key)) == targets[key]
            line.append(f"**{text}**" if is_best else text)
        lines.append(line)
    return markdown_table([label for _, label in columns], lines)


def clean_json(value: Any) -> Any:
    """``value`` with NaN/inf replaced by None, so the JSON is valid everywhere.

    >>> clean_json({"a": [1.0, float("nan")]})
    {'a': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value
