"""Helpers of the web app tests: the real ``convbench serve`` in a subprocess, its API, and
the command line (a module of its own, so test files import it by a name no other test
folder uses)."""

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
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, store: Path | None = None, check: bool = True,
        timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``convbench ARGS`` in a subprocess, as a user types it."""
    extra = ["--store", str(store)] if store else []
    return subprocess.run([sys.executable, "-m", "convbench.cli", *args, *extra],
                          capture_output=True, text=True, check=check, timeout=timeout, cwd=cwd)


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
