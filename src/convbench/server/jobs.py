"""Runs started from the web app: a queue, and at most ``max_runs`` worker processes.

A job is a config to train or a stopped run to resume. :meth:`Jobs.tick` (called by the live
view's shared poll, and after each submit) reaps finished workers and starts queued jobs
while fewer than ``max_runs`` run. Each worker is ``python -m convbench.server.worker`` in
its own session, so the server's Ctrl-C does not reach it; :meth:`Jobs.shutdown` stops the
workers with SIGTERM, which leaves their runs ``stopped`` and resumable.

>>> import tempfile
>>> jobs = Jobs("runs.db", max_runs=1, folder=tempfile.mkdtemp())
>>> jobs.snapshot()
[]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHUTDOWN_WAIT_S = 15.0  # a stopping worker writes its checkpointed state first
KEEP_FINISHED = 50  # finished jobs listed (the store has the runs themselves)


@dataclass
class Job:
    """One queued, running or finished job."""

    id: str
    spec: dict[str, Any]  # {"config": {...}} (+ "lr_find": {...}) or {"resume": run_id}
    status: str = "queued"  # queued → running → done | failed | cancelled
    run_id: str | None = None
    group_id: str | None = None  # a search's, when it ends
    error: str | None = None
    created: float = field(default_factory=time.time)
    process: subprocess.Popen | None = None

    def view(self) -> dict[str, Any]:
        """What the page sees."""
        kind = next((k for k in ("search", "lr_find", "resume") if k in self.spec), "train")
        return {"id": self.id, "kind": kind, "status": self.status, "run_id": self.run_id,
                "error": self.error, "resume": self.spec.get("resume"),
                "name": (self.spec.get("config") or self.spec.get("search") or {}).get("name"),
                "group_id": self.group_id}


class Jobs:
    """The job queue of one server; thread-safe."""

    def __init__(self, store_url: str, max_runs: int, folder: str | Path):
        self.store_url, self.max_runs = store_url, max_runs
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, *, config: dict | None = None, resume: str | None = None,
               lr_find: dict | None = None, search: dict | None = None) -> Job:
        """Queue a config to train (or to range-test, with an ``lr_find`` spec), a run to
        resume or a search spec, and start it if a slot is free."""
        spec: dict[str, Any] = {"config": config} if resume is None else {"resume": resume}
        if lr_find is not None:
            spec["lr_find"] = lr_find
        if search is not None:
            spec = {"search": search}
        job = Job(id=uuid.uuid4().hex[:10], spec=spec, run_id=resume)
        with self._lock:
            self._jobs[job.id] = job
        self.tick()
        return job

    def cancel_queued(self, run_id: str) -> bool:
        """Drop a queued resume of ``run_id``; True if there was one."""
        with self._lock:
            for job in self._jobs.values():
                if job.status == "queued" and job.run_id == run_id:
                    job.status = "cancelled"
                    return True
        return False

    def queued(self, run_id: str) -> bool:
        """Whether a job of ``run_id`` waits for a slot."""
        with self._lock:
            return any(j.run_id == run_id and j.status == "queued" for j in self._jobs.values())

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def tick(self) -> None:
        """Reap finished workers, learn new run ids, start queued jobs in free slots."""
        with self._lock:
            for job in self._jobs.values():
                if job.status == "running":
                    self._update(job)
            running = sum(j.status == "running" for j in self._jobs.values())
            for job in sorted(self._jobs.values(), key=lambda j: j.created):
                if running >= self.max_runs:
                    break
                if job.status == "queued":
                    self._start(job)
                    running += 1
            finished = [j for j in self._jobs.values()
                        if j.status in ("done", "failed", "cancelled")]
            excess = max(0, len(finished) - KEEP_FINISHED)
            for job in sorted(finished, key=lambda j: j.created)[:excess]:
                del self._jobs[job.id]

    def snapshot(self) -> list[dict[str, Any]]:
        """Every job the page should know about, oldest first."""
        with self._lock:
            return [j.view() for j in sorted(self._jobs.values(), key=lambda j: j.created)]

    def shutdown(self) -> None:
        """SIGTERM every worker (its run becomes ``stopped``, resumable) and wait for them."""
        with self._lock:
            procs = [j.process for j in self._jobs.values()
                     if j.status == "running" and j.process is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ----- internals (called with the lock held) ------------------------------------------
    def _start(self, job: Job) -> None:
        path = self.folder / f"{job.id}.json"
        path.write_text(json.dumps({"id": job.id, "store": self.store_url, **job.spec}))
        log = open(self.folder / f"{job.id}.log", "wb")  # noqa: SIM115 - the child keeps it
        # Our own source first on the child's path, as in the parent (a checkout, a venv).
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in [str(Path(__file__).resolve().parents[2]),
                        os.environ.get("PYTHONPATH", "")] if p))
        job.process = subprocess.Popen(
            [sys.executable, "-m", "convbench.server.worker", str(path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        log.close()
        job.status = "running"

    def _update(self, job: Job) -> None:
        out = self._outcome(job)
        if out.get("run_id"):
            job.run_id = out["run_id"]
        job.group_id = out.get("group_id") or job.group_id
        if job.process is None or job.process.poll() is None:
            return
        code = job.process.returncode
        job.status = "done" if code == 0 else "failed"
        job.error = out.get("error") or (None if code == 0 else self._tail(job))

    def _outcome(self, job: Job) -> dict[str, Any]:
        try:
            return json.loads((self.folder / f"{job.id}.out.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _tail(self, job: Job) -> str:
        try:
            lines = (self.folder / f"{job.id}.log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "the worker ended without a message"
        return "\n".join(lines[-5:]) or f"the worker exited with status {job.process.returncode}"
