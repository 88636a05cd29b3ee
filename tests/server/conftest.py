"""The real ``convbench serve`` on a free loopback port over a real SQLite store, and Debian's
chromium driven by Playwright (as tests/report/test_report_browser.py launches it)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ holds helpers shared by several test folders (pg.py).
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from pg import postgres_server, postgres_url  # noqa: E402, F401

pytest.importorskip("fastapi", reason="convbench serve needs the `serve` extra")
pytest.importorskip("uvicorn", reason="convbench serve needs the `serve` extra")

from serving import ARGS, CHROMIUM, Server, start_server  # noqa: E402


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The app on loopback over a new SQLite store in ``tmp_path``."""
    running = start_server(tmp_path / "runs.db")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("needs Debian chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server: Server):
    """A page whose requests may go only to the app itself (nothing from a CDN)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    outside: list[str] = []
    errors: list[str] = []

    def guard(route):
        if route.request.url.startswith(server.base) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    opened.route("**/*", guard)
    opened.on("pageerror", lambda err: errors.append(str(err)))
    opened.outside, opened.errors = outside, errors
    yield opened
    context.close()
    assert outside == [], outside
    assert errors == [], errors
