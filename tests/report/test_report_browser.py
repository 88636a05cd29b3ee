"""The report in a real browser (Debian chromium driven by Playwright), fully offline."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Debian chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def _open(browser, url: str, width: int):
    """A page at ``url`` whose requests other than file:// are recorded and refused."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    outside: list[str] = []

    def guard(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.on("request", lambda r: None if r.url.startswith("file://") else outside.append(r.url))
    page.goto(url, wait_until="load")
    return context, page, outside


def test_report_renders_offline_with_table_and_plots(browser, report, tmp_path):
    url = report["paths"]["html"].resolve().as_uri()
    context, page, outside = _open(browser, url, 1280)
    try:
        header = page.locator("#summary table thead th").all_inner_texts()
        assert header[:3] == ["Model", "Runs", "Test accuracy"] and len(header) == 19
        rows = page.locator("#summary table tbody tr")
        assert rows.count() == 3  # one per model/config variant
        for i in range(rows.count()):
            cells = [t.strip() for t in rows.nth(i).locator("td").all_inner_texts()]
            assert len(cells) == len(header)
            assert all(cells) and "—" not in cells, cells
        assert page.locator("#summary td.best").count() >= len(header) - 3

        plots = page.locator("figure svg")
        assert plots.count() == 6  # curves, cost, per-class, three confusion matrices
        for i in range(plots.count()):
            box = plots.nth(i).bounding_box()
            assert box and box["width"] > 200 and box["height"] > 150, box

        sticky = page.eval_on_selector("#summary th", "th => getComputedStyle(th).position")
        assert sticky == "sticky"
        assert page.evaluate("document.fonts.size") == 0  # no web fonts to fetch
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        assert outside == []
    finally:
        context.close()


def test_report_fits_a_phone_screen(browser, report, tmp_path):
    url = report["paths"]["html"].resolve().as_uri()
    context, page, outside = _open(browser, url, 390)
    try:
        # Wide tables scroll inside their frame; the page itself never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        wrap = page.locator("#summary .table-wrap")
        assert wrap.evaluate("w => w.scrollWidth > w.clientWidth")
        for box in (page.locator("figure svg").nth(i).bounding_box() for i in range(6)):
            assert box and 0 < box["width"] <= 390 and box["height"] > 0
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=False)
        assert outside == []
    finally:
        context.close()
