"""The real ``convbench serve`` on a free loopback port over a real SQLite store, and Debian's
chromium driven by Playwright (as tests/report/test_report_browser.py launches it)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# tests/ holds helpers shared by several test folders (pg.py).
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from pg import postgres_server, postgres_url  # noqa: E402, F401

pytest.importorskip("fastapi", reason="convbench serve needs the `serve` extra")
pytest.importorskip("uvicorn", reason="convbench serve needs the `serve` extra")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, store: Path | None = None, check: bool = True,
        timeout: float = 300) -> subprocess.CompletedProcess:
    """``convbench ARGS`` in a subprocess, as a user types it."""
    extra = ["--store", str(store)] if store else []
    return subprocess.run([sys.executable, "-m", "convbench.cli", *args, *extra],
                          capture_output=True, text=True, check=check, timeout=timeout)


@dataclass
class Server:
    """A running ``convbench serve``: its URL, store file, printed line and token."""

    process: subprocess.Popen
    base: str
    store: Path
    banner: str
    token: str | None = None

    def url(self, path: str = "/") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}" + (f"{sep}token={self.token}" if self.token else "")

    def call(self, path: str, body: dict | None = None, token: str | None = None,
             headers: dict | None = None) -> tuple[int, dict]:
        """An API call; returns (HTTP status, JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data,
                                         method="GET" if body is None else "POST")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if token or self.token:
            request.add_header("X-Convbench-Token", token or self.token)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # as Ctrl-C: workers stop resumably
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(store: Path | str, *args: str, host: str = "127.0.0.1") -> Server:
    """Start ``convbench serve`` and wait until its API answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "convbench.cli", "serve", "--store", str(store), "--no-browser",
         "--port", str(port), "--host", host, *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    banner = process.stdout.readline()
    match = re.search(r"token=([\w-]+)", banner)
    server = Server(process, f"http://127.0.0.1:{port}", store, banner,
                    match[1] if match else None)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"convbench serve exited: {banner}{process.stdout.read()}")
        try:
            if server.call("/api/facets")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError("convbench serve did not answer in time")


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
