"""Building blocks for self-contained HTML reports: page, table, figure.

Everything is inline (CSS, SVG plots), so a report opens offline from a file, an e-mail
attachment or a CI artifact, and never requests anything from the network.

>>> html = page("Demo", [("Results", table([("model", "Model"), ("acc", "Accuracy")],
...                                        [{"model": "a", "acc": 0.9}, {"model": "b", "acc": 0.8}],
...                                        best={"acc": "max"}))])
>>> html.startswith("<!DOCTYPE html>") and 'class="best"' in html
True
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from html import escape
from typing import Any

from . import fmt
from .pareto import pareto_front

__all__ = ["Cell", "best_values", "column_pairs", "escape", "figure", "page", "pareto_front",
           "slug", "table"]


@dataclass(frozen=True)
class Cell:
    """A table cell whose text differs from the number it stands for.

    ``value`` is what best-cell marking compares (None: not comparable), ``text`` what is
    shown, ``sub`` a smaller second line (e.g. a median), ``title`` a hover tooltip and
    ``swatch`` a CSS colour shown as a small square before the text (the plot colour).

    >>> Cell(0.912, "91.2 ± 0.3 %", sub="median 91.3 %").text
    '91.2 ± 0.3 %'
    """

    value: float | None
    text: str
    sub: str = ""
    title: str = ""
    swatch: str = ""


CSS = """
:root {
  --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f6f8fa; --accent: #0b6bcb;
  --best-bg: #dafbe1; --best-fg: #116329; --warn-bg: #fff8c5;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; color: var(--fg); background: #fff; line-height: 1.5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", "Liberation Sans", sans-serif;
  font-size: 15px;
}
main { max-width: 1200px; margin: 0 auto; padding: 24px 20px 64px; }
header h1 { font-size: 1.75rem; margin: 0 0 4px; }
header .subtitle { color: var(--muted); margin: 0 0 12px; }
nav.toc { display: flex; flex-wrap: wrap; gap: 6px 16px; padding: 8px 0 4px;
  border-bottom: 1px solid var(--line); font-size: .9rem; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
section { margin-top: 32px; }
section > h2 { font-size: 1.3rem; margin: 0 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 18px 0 6px; }
p.note, .note { color: var(--muted); font-size: .875rem; }
.table-wrap { overflow: auto; max-height: 80vh; border: 1px solid var(--line);
  border-radius: 6px; margin: 8px 0; }
table.data { border-collapse: separate; border-spacing: 0; width: 100%;
  font-variant-numeric: tabular-nums; font-size: .875rem; }
table.data th, table.data td { padding: 6px 10px; border-bottom: 1px solid var(--line);
  text-align: right; white-space: nowrap; vertical-align: top; }
table.data th { position: sticky; top: 0; z-index: 2; background: var(--head);
  font-weight: 600; border-bottom: 2px solid var(--line); }
table.data th:first-child, table.data td:first-child { text-align: left; position: sticky;
  left: 0; background: #fff; z-index: 1; border-right: 1px solid var(--line); }
table.data th:first-child { z-index: 3; background: var(--head); }
table.data tbody tr:hover td { background: #f6f8fa; }
table.data td.text, table.data th.text { text-align: left; }
table.data td.wrap { white-space: normal; min-width: 24em; }
table.data td.best { background: var(--best-bg); color: var(--best-fg); font-weight: 700; }
table.data tbody tr:hover td.best { background: #c7f2d0; }
table.data td .sub { display: block; color: var(--muted); font-size: .78rem;
  font-weight: 400; }
table.data td.best .sub { color: var(--best-fg); }
table.data tr:last-child td { border-bottom: 0; }
.swatch { display: inline-block; width: .75em; height: .75em; border-radius: 2px;
  margin-right: 6px; vertical-align: -1px; }
.callout { background: var(--warn-bg); border: 1px solid #e6d57a; border-radius: 6px;
  padding: 8px 12px; margin: 8px 0; }
details summary { cursor: pointer; color: var(--accent); margin: 8px 0; }
figure { margin: 12px 0; }
/* Natural size (so every plot has the same font size), shrunk on narrow screens. */
figure svg, figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: 4px; }
.grid { display: grid; gap: 16px; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); }
.grid figure { margin: 0; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0;
  font-size: .9rem; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85em; }
footer { margin-top: 48px; color: var(--muted); font-size: .8rem; }
@media (max-width: 640px) {
  main { padding: 16px 10px 40px; }
  body { font-size: 14px; }
  .grid { grid-template-columns: 1fr; }
  /* The sticky first column must leave room to scroll the numbers beside it. */
  table.data td:first-child { white-space: normal; min-width: 7em; max-width: 42vw; }
}
@media print { .table-wrap { max-height: none; overflow: visible; } }
"""


def slug(text: str) -> str:
    """An HTML id made from a heading.

    >>> slug("Accuracy against cost")
    'accuracy-against-cost'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def page(title: str, sections: list[tuple[str, str]], subtitle: str = "") -> str:
    """A complete, self-contained HTML document: inline CSS, no scripts, no external files.

    ``sections`` are ``(heading, html)`` pairs; each gets an anchor and a table-of-contents
    link. ``subtitle`` is plain text.

    >>> "<h2>Results</h2>" in page("T", [("Results", "<p>ok</p>")]).replace(' id="results"', "")
    True
    """
    ids: list[str] = []
    for heading, _ in sections:
        base = candidate = slug(heading)
        n = 2
        while candidate in ids:
            candidate, n = f"{base}-{n}", n + 1
        ids.append(candidate)
    toc = "".join(
        f'<a href="#{sid}">{escape(heading)}</a>'
        for sid, (heading, _) in zip(ids, sections, strict=True)
    )
    body = "\n".join(
        f'<section id="{sid}">\n<h2>{escape(heading)}</h2>\n{content}\n</section>'
        for sid, (heading, content) in zip(ids, sections, strict=True)
    )
    sub = f'<p class="subtitle">{escape(subtitle)}</p>' if subtitle else ""
    nav = f'<nav class="toc">{toc}</nav>' if len(sections) > 1 else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header>\n<h1>{escape(title)}</h1>\n{sub}\n{nav}\n</header>\n{body}\n"
        '<footer>Generated by convbench. This page is self-contained: it loads nothing from '
        "the network.</footer>\n</main>\n</body>\n</html>\n"
    )


def cell_number(value: Any) -> float | None:
    """The number a cell stands for (what best-cell marking compares), or None."""
    return value.value if isinstance(value, Cell) else fmt.number(value)


def best_values(
    columns: list[tuple[str, str]], rows: list[dict], best: dict[str, str]
) -> dict[str, float]:
    """Best value per marked column, only where at least two rows differ (a column of
    equal values has no best).

    >>> best_values([("t", "Time")], [{"t": 3}, {"t": Cell(2.0, "2 s")}, {"t": None}], {"t": "min"})
    {'t': 2.0}
    """
    out: dict[str, float] = {}
    for key, _ in columns:
        rule = best.get(key)
        if rule not in ("max", "min"):
            continue
        values = [v for v in (fmt.number(cell_number(r.get(key))) for r in rows) if v is not None]
        if len(set(values)) >= 2:
            out[key] = max(values) if rule == "max" else min(values)
    return out


LONG_TEXT = 60  # characters after which a text cell may wrap (error messages)
TEXT_CLASS = ' class="text"'


def _plain(value: Any) -> str:
    return value.text if isinstance(value, Cell) else str(value)


def cell_text(value: Any) -> str:
    """A cell as plain text, as the HTML table shows it (without a Cell's second line).

    >>> cell_text(None), cell_text(0.123456), cell_text(True), cell_text(Cell(2.0, "2 s"))
    ('—', '0.1235', 'yes', '2 s')
    """
    if isinstance(value, Cell):
        return value.text
    if value is None or (isinstance(value, float) and fmt.number(value) is None):
        return fmt.MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return fmt.sig(value, 4)
    return str(value)


def _cell_html(value: Any) -> tuple[str, bool]:
    """Inner HTML of a cell and whether it holds text (left-aligned) rather than a number."""
    if isinstance(value, Cell):
        sub = f'<span class="sub">{escape(value.sub)}</span>' if value.sub else ""
        swatch = (f'<span class="swatch" style="background:{escape(value.swatch)}"></span>'
                  if value.swatch else "")
        return swatch + escape(value.text) + sub, value.value is None and value.text != fmt.MISSING
    if value is None or (isinstance(value, float) and fmt.number(value) is None):
        return fmt.MISSING, False
    return escape(cell_text(value)), isinstance(value, bool) or not isinstance(value, int | float)


def column_pairs(columns: list[Any], best: dict[str, str] | None = None
                 ) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``(key, label)`` pairs and the best rules of ``columns``: pairs, or column objects
    with ``key``, ``label`` and ``best`` (:class:`convbench.report.columns.Column`).

    >>> column_pairs([("m", "Model")], {"m": "max"})
    ([('m', 'Model')], {'m': 'max'})
    """
    pairs, rules = [], dict(best or {})
    for column in columns:
        if isinstance(column, tuple):
            pairs.append(column)
        else:
            pairs.append((column.key, column.label))
            if column.best:
                rules.setdefault(column.key, column.best)
    return pairs, rules


def table(columns: list[Any], rows: list[dict], best: dict[str, str] | None = None) -> str:
    """An HTML table with a sticky header and first column; best cell per column marked.

    ``columns`` are ``(key, label)`` pairs or Column objects;
    row values may be numbers, strings, None (shown as a dash) or :class:`Cell`. ``best``
    (or a column's own ``best``) maps a key to ``"max"`` or ``"min"``: the best value in that
    column (all ties) gets ``class="best"`` (bold, green), unless the column has fewer than
    two different values.

    >>> html = table([("m", "Model"), ("t", "Time (s)")], [{"m": "a", "t": 3}, {"m": "b", "t": 5}],
    ...              best={"t": "min"})
    >>> html.count('class="best"')
    1
    """
    columns, best = column_pairs(columns, best)
    targets = best_values(columns, rows, best)
    rendered = [[_cell_html(row.get(key)) for key, _ in columns] for row in rows]
    # A column of text (names, statuses) reads better left-aligned, header included.
    text_columns = [
        any(is_text for _, is_text in cells) and all(
            is_text or inner == fmt.MISSING for inner, is_text in cells)
        for cells in zip(*rendered, strict=True)
    ] if rows else [False] * len(columns)
    head = "".join(
        f'<th scope="col"{TEXT_CLASS if is_text else ""}>{escape(label)}</th>'
        for (_, label), is_text in zip(columns, text_columns, strict=True)
    )
    body_rows = []
    for row, cells in zip(rows, rendered, strict=True):
        tds = []
        for (key, _), (inner, is_text), text_col in zip(columns, cells, text_columns, strict=True):
            value = row.get(key)
            classes = []
            if is_text or text_col:
                classes.append("text")
            if is_text and len(_plain(value)) > LONG_TEXT:
                classes.append("wrap")
            target = targets.get(key)
            if target is not None and fmt.number(cell_number(value)) == target:
                classes.append("best")
            attrs = f' class="{" ".join(classes)}"' if classes else ""
            if isinstance(value, Cell) and value.title:
                attrs += f' title="{escape(value.title)}"'
            tds.append(f"<td{attrs}>{inner}</td>")
        body_rows.append(f"<tr>{''.join(tds)}</tr>")
    return (
        '<div class="table-wrap"><table class="data">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body_rows)}</tbody></table></div>"
    )


def _svg_of(fig: Any, tight: bool) -> str:
    # Imported here so that pages and tables do not pay matplotlib's import time.
    import matplotlib

    buffer = io.StringIO()
    # No metadata (its RDF block names web URLs) and a fixed hash salt make the same figure
    # give the same bytes.
    metadata = {"Date": None, "Creator": None, "Format": None, "Type": None}
    with matplotlib.rc_context({"svg.hashsalt": "convbench", "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata=metadata,
                    bbox_inches="tight" if tight else None)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # Several SVGs share one HTML document, so their element ids (and the url(#id) references
    # to clip paths and markers) need a per-figure prefix to stay unique.
    prefix = "f" + hashlib.sha1(svg.encode()).hexdigest()[:8] + "-"
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', svg)
    return svg


def figure(fig: Any, caption: str = "", alt: str = "", tight: bool = True) -> str:
    """A matplotlib figure as an inline ``<svg>`` inside ``<figure>`` (pyplot figures are closed).

    Text stays text (``svg.fonttype = none``), so it is crisp, searchable and uses the page
    font. ``alt`` becomes the SVG's accessible label. ``tight`` crops the figure to its
    content; figures with a constrained layout can skip it (it costs a second draw).

    >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    >>> f, ax = plt.subplots(); _ = ax.plot([1, 2], [3, 4])
    >>> figure(f, caption="A line").startswith("<figure><svg")
    True
    """
    try:
        svg = _svg_of(fig, tight)
    finally:
        # Figures made with pyplot stay registered (and in memory) until closed; figures
        # made with matplotlib.figure.Figure have no manager and need nothing.
        if getattr(fig.canvas, "manager", None) is not None:
            import matplotlib.pyplot as plt

            plt.close(fig)
    label = alt or caption
    if label:
        svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"
