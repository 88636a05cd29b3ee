"""The web app at scale: a store of 10,000 runs, the Runs API, the Runs page's first screen,
and a 20-run comparison.

Fills a new SQLite store (or the PostgreSQL store given with ``--store``) with ``--runs``
finished classification runs — full resolved configs as the engine stores them, 3 epochs
each, final metrics — in a few bulk transactions, starts the real ``convbench serve`` on a
free loopback port and measures:

* Runs API: ``GET /api/runs`` (newest first; filtered by data set and sorted by test
  accuracy; a free-text search; a page far down), median of ``--repeat`` calls — the
  server keeps the short form of every run in memory (read once at start, then only what
  changes), so these do not parse 10,000 JSON configs per call;
* first render: Debian chromium opening ``/runs`` until the first page of rows is drawn;
* compare: ``GET /api/compare`` of 20 runs, and the Compare page until its Pareto chart is
  drawn.

    python benchmarks/dashboard.py [--runs 10000] [--store URL] [--repeat 20]

Targets (issue 11): Runs API < 200 ms, first screen < 1 s, 20-run comparison < 1 s.
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import sqlalchemy as sa

from convbench.config import RunConfig, apply_overrides
from convbench.store import Store
from convbench.store.schema import epochs, runs

DATASETS = ["digits", "fashion-mnist", "cifar10", "synthetic"]
MODELS = ["B2FL8", "B2FL16", "B3FL32", "simple-cnn", "resnet20", "custom-cnn"]
OPTIMIZERS = ["adam", "sgd", "adamw"]
CHROMIUM = "/usr/bin/chromium"


def fill(store: Store, n: int, seed: int = 0) -> list[str]:
    """``n`` finished runs with their epochs, inserted in bulk (the listing reads them as it
    reads runs written by the engine)."""
    rng = random.Random(seed)
    configs = {}
    for d in DATASETS:
        for m in MODELS:
            for o in OPTIMIZERS:
                cfg = apply_overrides(RunConfig(), [f"data.dataset={d}", f"model.name={m}",
                                                    f"optim.name={o}", "train.epochs=3"])
                configs[(d, m, o)] = cfg.model_dump(mode="json")
    keys = list(configs)
    run_rows, epoch_rows, ids = [], [], []
    for i in range(n):
        rid = uuid.uuid4().hex[:8]
        key = keys[i % len(keys)]
        acc = rng.uniform(0.6, 0.99)
        stamp = f"2026-01-01T00:00:00.{i:06d}+00:00"
        run_rows.append({
            "id": rid, "name": f"bench-{i}", "kind": "train" if i % 10 else "lr-find",
            "status": "completed" if i % 17 else "failed", "group_id": None,
            "config": configs[key], "seed": i % 3, "env": {"python": "3.11", "threads": 2},
            "device": "cpu", "started_at": stamp, "ended_at": stamp,
            "metrics": {"test_accuracy": acc, "best_val_accuracy": acc + 0.01,
                        "train_time_s": rng.uniform(10, 600), "params_total": rng.randint(1e4, 1e7),
                        "flops": rng.uniform(1e5, 1e9), "energy_j": rng.uniform(100, 1e5),
                        "epochs_run": 3},
            "artifacts": {}})
        for e in (1, 2, 3):
            epoch_rows.append({"run_id": rid, "epoch": e, "metrics": {
                "train_loss": 1.5 / e, "val_loss": 1.6 / e, "train_accuracy": acc - 0.1 / e,
                "val_accuracy": acc - 0.12 / e, "time_s": 5.0}})
        ids.append(rid)
    with store.engine.begin() as conn:
        for start in range(0, n, 2000):
            conn.execute(sa.insert(runs), run_rows[start:start + 2000])
        for start in range(0, len(epoch_rows), 6000):
            conn.execute(sa.insert(epochs), epoch_rows[start:start + 6000])
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
    return (time.perf_counter() - start) * 1000


def median_ms(url: str, repeat: int) -> float:
    timed_get(url)  # warm: connection pools, imports
    return statistics.median(timed_get(url) for _ in range(repeat))


def browser_ms(base: str, compare_ids: list[str]) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base + "/runs")  # warm the browser cache of the static files
        page.wait_for_selector("#runs-table tbody tr")
        for name, path, ready in (
                ("runs first screen", "/runs", "#runs-table tbody tr"),
                ("compare page (20 runs)", "/compare?ids=" + ",".join(compare_ids),
                 "#pareto svg circle.dot")):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                page.goto(base + path)
                page.wait_for_selector(ready)
                times.append((time.perf_counter() - start) * 1000)
            out[name] = statistics.median(times)
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--store", help="store URL (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    url = args.store or str(Path(tempfile.mkdtemp()) / "runs.db")
    store = Store(url)
    start = time.perf_counter()
    ids = fill(store, args.runs)
    print(f"filled {args.runs} runs in {time.perf_counter() - start:.1f} s ({store!r})")
    start = time.perf_counter()
    store.run_summaries()
    print(f"the Runs listing's one full read of the store (at server start): "
          f"{(time.perf_counter() - start) * 1000:.0f} ms")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "convbench.cli", "serve", "--store", url,
                               "--no-browser", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        server.stdout.readline()
        for _ in range(200):
            try:
                timed_get(base + "/api/facets")
                break
            except OSError:
                time.sleep(0.2)
        compare_ids = [i for i, n in zip(ids, range(len(ids)), strict=False)
                       if n % 10 and n % 17][:20]
        timings = {
            "runs API, newest first (50 rows)": median_ms(base + "/api/runs?limit=50",
                                                          args.repeat),
            "runs API, data set filter + sort by accuracy": median_ms(
                base + "/api/runs?dataset=cifar10&sort=test_accuracy&desc=true&limit=50",
                args.repeat),
            "runs API, free-text search": median_ms(base + "/api/runs?q=b3fl32&limit=50",
                                                    args.repeat),
            "runs API, page 100 (offset 4950)": median_ms(
                base + "/api/runs?offset=4950&limit=50", args.repeat),
            "compare API (20 runs)": median_ms(base + "/api/compare?ids=" + ",".join(compare_ids),
                                               max(3, args.repeat // 4)),
        }
        if Path(CHROMIUM).exists():
            timings |= browser_ms(base, compare_ids)
        else:
            print("(no /usr/bin/chromium: page timings skipped)")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    width = max(map(len, timings))
    for name, ms in timings.items():
        print(f"{name:<{width}}  {ms:8.1f} ms")
    slow = {k: v for k, v in timings.items()
            if v > (200 if re.match("runs API", k) else 1000)}
    print("targets met" if not slow else f"over target: {', '.join(slow)}")


if __name__ == "__main__":
    main()
