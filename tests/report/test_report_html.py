"""The reusable HTML building blocks: pareto_front, table, page, figure."""

from __future__ import annotations

import random
import re

import matplotlib
from matplotlib.figure import Figure

from convbench.report.html import Cell, figure, page, pareto_front, table


def test_pareto_front_on_a_hand_example():
    points = [
        (1.0, 0.50),          # 0: on the front (cheapest with 0.5)
        (2.0, 0.90),          # 1: on the front (best accuracy)
        (3.0, 0.80),          # 2: dominated by 1 (dearer and worse)
        (0.5, 0.20),          # 3: on the front (cheapest overall)
        (2.0, 0.90),          # 4: duplicate of 1: kept with it
        (2.0, 0.60),          # 5: same cost as 1 but worse
        (None, 1.00),         # 6: unknown cost: never on the front
        (4.0, float("nan")),  # 7: unknown accuracy
        (1.5, 0.50),          # 8: as accurate as 0 but dearer
    ]
    assert pareto_front(points) == [3, 0, 1, 4]


def test_pareto_front_directions():
    # Throughput: more is better on x too.
    points = [(100, 0.8), (200, 0.7), (50, 0.9), (150, 0.6)]
    assert pareto_front(points, minimize_x=False) == [1, 0, 2]
    # Loss: less is better on y.
    assert pareto_front([(1, 0.3), (2, 0.2), (3, 0.25)], maximize_y=False) == [0, 1]
    assert pareto_front([]) == []


def test_pareto_front_matches_the_definition_on_random_points():
    rng = random.Random(7)
    for _ in range(50):
        points = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(rng.randint(1, 12))]
        dominated = {
            i for i, (x, y) in enumerate(points)
            if any(a <= x and b >= y and (a, b) != (x, y) for a, b in points)
        }
        assert set(pareto_front(points)) == set(range(len(points))) - dominated


def _best_cells(html: str, tables) -> dict[str, list[str]]:
    [parsed] = tables(html)
    out: dict[str, list[str]] = {}
    for row in parsed["rows"]:
        for label, cell in zip(parsed["header"], row, strict=True):
            if "best" in cell["classes"]:
                out.setdefault(label, []).append(row[0]["text"])
    return out


def test_table_marks_the_best_cell_of_each_ranked_column(tables):
    columns = [("name", "Model"), ("acc", "Accuracy"), ("time", "Time"), ("epochs", "Epochs"),
               ("lonely", "Only one value"), ("same", "All equal")]
    rows = [
        {"name": "a", "acc": Cell(0.91, "91 %"), "time": 30.0, "epochs": 5, "lonely": 1.0,
         "same": 7},
        {"name": "b", "acc": Cell(0.95, "95 %"), "time": None, "epochs": 9, "same": 7},
        {"name": "c", "acc": Cell(None, "—"), "time": 12.5, "epochs": 1, "same": 7},
        {"name": "d", "acc": Cell(0.95, "95 %"), "time": float("nan"), "epochs": 3, "same": 7},
    ]
    html = table(columns, rows, best={"acc": "max", "time": "min", "lonely": "min",
                                      "same": "min"})
    # Ties are all marked; missing values never win; an unranked column is not marked;
    # a column with a single value, or only equal values, has nothing to beat.
    assert _best_cells(html, tables) == {"Accuracy": ["b", "d"], "Time": ["c"]}
    [parsed] = tables(html)
    assert [c["text"] for c in parsed["rows"][2]] == ["c", "—", "12.5", "1", "—", "7"]
    assert [c["text"] for c in parsed["rows"][3]][2] == "—"


def test_table_escapes_text_and_aligns_text_columns_left(tables):
    html = table([("name", "Model"), ("n", "Count")],
                 [{"name": "<script>alert(1)</script>", "n": 3}, {"name": "b & c", "n": 4}])
    assert "<script>" not in html and "&lt;script&gt;" in html
    [parsed] = tables(html)
    assert parsed["rows"][1][0]["text"] == "b & c"
    first = parsed["rows"][0]
    assert "text" in first[0]["classes"] and "text" not in first[1]["classes"]
    assert '<th scope="col" class="text">Model</th>' in html


def test_page_is_self_contained_with_working_anchors():
    html = page("Título <1>", [("Summary", "<p>x</p>"), ("Summary", "<p>y</p>"),
                               ("Accuracy against cost", "")], subtitle="3 runs")
    assert html.startswith("<!DOCTYPE html>") and "<title>Título &lt;1&gt;</title>" in html
    assert not re.search(r"<script|<link|<img|@import|url\(", html, re.IGNORECASE)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    anchors = re.findall(r'href="#([^"]+)"', html)
    ids = re.findall(r'<section id="([^"]+)"', html)
    assert anchors == ids == ["summary", "summary-2", "accuracy-against-cost"]
    assert 'name="viewport"' in html and "position: sticky" in html


def _plot(title: str) -> Figure:
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.plot([1, 2, 3], [3, 1, 2], marker="o")
    ax.fill_between([1, 2, 3], [0, 0, 0], [1, 2, 1])
    ax.set_title(title)
    return fig


def test_figures_are_inline_svg_with_unique_ids():
    html = figure(_plot("one"), caption="First") + figure(_plot("two"), alt="Second")
    assert html.count("<svg") == 2 and "<?xml" not in html and "<!DOCTYPE" not in html
    assert "<figcaption>First</figcaption>" in html and 'aria-label="Second"' in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert ids and len(ids) == len(set(ids))
    references = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', html)
    assert references
    assert all((a or b) in ids for a, b in references)
    # Text stays text (crisp, searchable) rather than glyph outlines.
    assert ">one</text>" in html


def test_figure_of_a_pyplot_figure_is_closed():
    matplotlib.use("Agg")  # no display in tests
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    number = fig.number
    figure(fig)
    assert number not in plt.get_fignums()
