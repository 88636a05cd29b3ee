"""The page's work survives the server: a restarted ``convbench serve`` on the same store
shows and controls the jobs its predecessor queued and started (real processes, real kill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serving import Server, free_port, start_server

from convbench.server.app import JOBS_FOLDER
from convbench.store import Store

# Seconds an epoch on every CPU kind: still training when the next server is up.
LONG = {"data.dataset": "fashion-mnist", "data.train_limit": "10000", "model.name": "B2FL8",
        "train.epochs": "3", "measure.cost": "false"}
QUICK = {"data.dataset": "digits", "model.name": "B2FL8", "train.epochs": "1",
         "measure.cost": "false"}
WAIT_S = 300


def _until(what, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what.__doc__ or what}")


def _jobs(server: Server) -> dict[str, dict]:
    return {j["id"]: j for j in server.call("/api/jobs")[1]}


def _status(store: Path, run_id: str) -> str:
    with Store(str(store)) as opened:
        return opened.get_run(run_id)["status"]


def _end_workers(store: Path) -> None:
    """Stop any worker a failed test left running (each by the process id its job noted)."""
    folder = Path(str(store).removesuffix(".db") + "-artifacts") / JOBS_FOLDER
    for path in folder.glob("*.state.json"):
        pid = json.loads(path.read_text()).get("pid")
        if pid and str(path.with_name(path.name.replace(".state", ""))).encode() in \
                _cmdline(pid):
            os.kill(pid, signal.SIGTERM)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _long_and_queued(server: Server) -> tuple[str, str, str]:
    """A long run training in the one slot and a quick one queued behind it: their job ids
    and the long one's run id."""
    long_job = server.call("/api/train", LONG)[1]["job"]["id"]
    quick_job = server.call("/api/train", QUICK)[1]["job"]["id"]
    return long_job, quick_job, _until(lambda: _jobs(server)[long_job]["run_id"])


def _completes(server: Server, job_id: str, store: Path) -> None:
    """The job trains on ``server`` and its run completes."""
    run_id = _until(lambda: _jobs(server)[job_id]["run_id"])
    _until(lambda: _jobs(server)[job_id]["status"] == "done")
    assert _status(store, run_id) == "completed"


@pytest.fixture
def servers(tmp_path):
    """Start servers on one store (``servers.start()``); all stopped, and any worker a failed
    test left behind ended, at the end."""
    store = tmp_path / "runs.db"
    started: list[Server] = []

    class Servers:
        def start(self) -> Server:
            started.append(start_server(store, "--max-runs", "1"))
            return started[-1]

    Servers.store = store
    yield Servers()
    for server in started:
        server.stop()
    _end_workers(store)


def test_a_killed_server_s_jobs_are_adopted_and_controlled_by_the_next(servers):
    first = servers.start()
    long_job, quick_job, run_id = _long_and_queued(first)
    _until(lambda: _status(servers.store, run_id) == "running")
    assert _jobs(first)[quick_job]["status"] == "queued"
    first.process.kill()  # a crash: no shutdown, the worker goes on training
    first.process.wait()

    second = servers.start()
    jobs = _jobs(second)
    assert jobs[long_job]["status"] == "running" and jobs[long_job]["run_id"] == run_id
    assert jobs[quick_job]["status"] == "queued"  # the slot is still taken
    live = second.call(f"/api/runs/{run_id}/live")[1]
    assert live["status"] == "running" and live["controllable"] is True
    assert second.call(f"/api/runs/{run_id}/stop", {}) == (200, {"requested": "stop"})
    _until(lambda: _status(servers.store, run_id) == "stopped")
    # The slot is free: the queued job of the first server trains now, on the second.
    _completes(second, quick_job, servers.store)
    assert _jobs(second)[long_job]["status"] == "done"


def test_queued_jobs_wait_for_the_next_server_after_ctrl_c(servers):
    first = servers.start()
    long_job, quick_job, run_id = _long_and_queued(first)
    first.stop()  # Ctrl-C: the running run stops resumably, the queued job is kept
    assert _status(servers.store, run_id) == "stopped"

    second = servers.start()
    assert _jobs(second)[long_job]["status"] == "done"
    _completes(second, quick_job, servers.store)
    # And the stopped run resumes from the new server's page.
    assert second.call(f"/api/runs/{run_id}/resume", {})[0] == 200


def test_a_second_server_on_the_same_store_is_refused(servers, tmp_path):
    # Both would start the queue's jobs and signal each other's workers.
    servers.start()
    second = subprocess.run(
        [sys.executable, "-m", "convbench.cli", "serve", "--store", str(servers.store),
         "--no-browser", "--port", str(free_port())],
        capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert "Another convbench serve is already running on this store" in second.stderr
    assert "Traceback" not in second.stderr
