"""Runs started from the web app: a queue, and at most ``max_runs`` worker processes.

A job is a config to train (or to range-test), a stopped run to resume, or a search.
:meth:`Jobs.tick` (called by the live view's shared poll, and after each submit) reaps
finished workers and starts queued jobs while fewer than ``max_runs`` run. Each worker is
``python -m convbench.server.worker`` in its own session, so the server's Ctrl-C does not
reach it; :meth:`Jobs.shutdown` stops the workers with SIGTERM, which leaves their runs
``stopped`` and resumable.

The queue lives in files beside the store (``serve-jobs/`` in its artifacts folder): per job
its spec (``ID.json``, what the worker reads), the server's record of it (``ID.state.json``:
status, worker process id, run or group id) and the worker's outcome (``ID.out.json``). A
restarted server reads them back: queued jobs start when a slot is free, and a worker its
predecessor started that still runs (the server was killed, not stopped) is adopted — shown,
counted against ``max_runs`` and controlled like its own.

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

from ..atomic import hold_lock
from ..atomic import write_text as atomic_write_text
from ..errors import ConfigError

SHUTDOWN_WAIT_S = 15.0  # a stopping worker writes its checkpointed state first
KEEP_FINISHED = 50  # finished jobs listed (the store has the runs themselves)


def _own(folder: Path):
    """Hold the queue's lock for as long as this server lives (the OS drops it when the
    process dies, even by SIGKILL): two servers on one store would both start its queued
    jobs and fight over its workers."""
    handle = hold_lock(folder / "server.lock")
    if handle is None:
        raise ConfigError(
            f"Another convbench serve is already running on this store (its job queue "
            f"{folder} is locked); open that one, or stop it first.")
    return handle


@dataclass
class Job:
    """One queued, running or finished job."""

    id: str
    spec: dict[str, Any]  # {"config": {...}} (+ "lr_find": {...}), {"resume": run_id}
    #                       or {"search": {...}}
    status: str = "queued"  # queued → running → done | failed | cancelled
    run_id: str | None = None
    group_id: str | None = None  # a search's, once its group is stored
    error: str | None = None
    created: float = field(default_factory=time.time)
    pid: int | None = None  # the worker's, while it runs
    process: subprocess.Popen | None = None  # None for a worker adopted from a predecessor

    def record(self) -> dict[str, Any]:
        """What is kept in ``ID.state.json``."""
        return {"id": self.id, "status": self.status, "run_id": self.run_id,
                "group_id": self.group_id, "error": self.error, "created": self.created,
                "pid": self.pid}

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
        self._owner = _own(self.folder)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._closing = False  # shutting down: queued jobs wait for the next server
        self._load()

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
        atomic_write_text(self._path(job, ".json"),
                          json.dumps({"id": job.id, "store": self.store_url, **spec}))
        with self._lock:
            self._jobs[job.id] = job
            self._save(job)
        self.tick()
        return job

    def cancel_queued(self, run_id: str) -> bool:
        """Drop a queued resume of ``run_id``; True if there was one."""
        with self._lock:
            for job in self._jobs.values():
                if job.status == "queued" and job.run_id == run_id:
                    job.status = "cancelled"
                    self._save(job)
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
                if running >= self.max_runs or self._closing:
                    break
                if job.status == "queued":
                    self._start(job)
                    running += 1
            finished = [j for j in self._jobs.values()
                        if j.status in ("done", "failed", "cancelled")]
            excess = max(0, len(finished) - KEEP_FINISHED)
            for job in sorted(finished, key=lambda j: j.created)[:excess]:
                del self._jobs[job.id]
                for suffix in (".json", ".state.json", ".out.json", ".log"):
                    self._path(job, suffix).unlink(missing_ok=True)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every job the page should know about, oldest first."""
        with self._lock:
            return [j.view() for j in sorted(self._jobs.values(), key=lambda j: j.created)]

    def stop_group(self, group_id: str) -> bool:
        """SIGTERM the worker running the search ``group_id`` (it ends ``stopped``,
        resumable); False when no job of this server (or its predecessor) runs it."""
        with self._lock:
            for job in self._jobs.values():
                if job.status == "running" and "search" in job.spec:
                    self._update(job)
                    if job.group_id == group_id and job.status == "running":
                        os.kill(job.pid, signal.SIGTERM)
                        return True
        return False

    def runs_group(self, group_id: str) -> bool:
        """Whether a running job of this server runs the search ``group_id``."""
        with self._lock:
            return any(j.status == "running" and j.group_id == group_id
                       for j in self._jobs.values())

    def shutdown(self) -> None:
        """SIGTERM every worker (its run becomes ``stopped``, resumable) and wait for them;
        queued jobs stay queued, for the next server on this store."""
        with self._lock:
            self._closing = True
            running = [j for j in self._jobs.values() if j.status == "running"]
        for job in running:
            if self._alive(job):
                os.kill(job.pid, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        for job in running:
            while self._alive(job) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._alive(job):
                os.kill(job.pid, signal.SIGKILL)
        self.tick()  # their outcomes, recorded for the next server
        self._owner.close()  # the next server on this store may take the queue

    # ----- internals (called with the lock held) ------------------------------------------
    def _path(self, job: Job, suffix: str) -> Path:
        return self.folder / f"{job.id}{suffix}"

    def _save(self, job: Job) -> None:
        atomic_write_text(self._path(job, ".state.json"), json.dumps(job.record()))

    def _load(self) -> None:
        """The jobs a previous server on this store left: queued, running (adopted when
        the worker still runs) or finished."""
        for path in self.folder.glob("*.state.json"):
            try:
                record = json.loads(path.read_text())
                spec = json.loads((self.folder / f"{record['id']}.json").read_text())
            except (OSError, json.JSONDecodeError, KeyError):
                continue  # a job file half-deleted by its predecessor's clean-up
            spec = {k: v for k, v in spec.items() if k not in ("id", "store")}
            self._jobs[record["id"]] = Job(spec=spec, **record)

    def _alive(self, job: Job) -> bool:
        """Whether the job's worker still runs (an adopted one is not our child: its
        process id is checked to still be a worker of this job, not a reused id)."""
        if job.process is not None:
            return job.process.poll() is None
        if job.pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{job.pid}/cmdline").read_bytes()
        except OSError:
            try:
                os.kill(job.pid, 0)  # no /proc (macOS): the id alone
            except OSError:
                return False
            return True
        return str(self._path(job, ".json")).encode() in cmdline

    def _start(self, job: Job) -> None:
        log = open(self._path(job, ".log"), "wb")  # noqa: SIM115 - the child keeps it
        # Our own source first on the child's path, as in the parent (a checkout, a venv).
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in [str(Path(__file__).resolve().parents[2]),
                        os.environ.get("PYTHONPATH", "")] if p))
        job.process = subprocess.Popen(
            [sys.executable, "-m", "convbench.server.worker", str(self._path(job, ".json"))],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        log.close()
        job.status, job.pid = "running", job.process.pid
        self._save(job)

    def _update(self, job: Job) -> None:
        out = self._outcome(job)
        known = (job.run_id, job.group_id)
        job.run_id = out.get("run_id") or job.run_id
        job.group_id = out.get("group_id") or job.group_id
        if self._alive(job):
            if (job.run_id, job.group_id) != known:
                self._save(job)
            return
        if job.process is not None:
            code = job.process.returncode
            job.status = "done" if code == 0 else "failed"
            job.error = out.get("error") or (None if code == 0 else self._tail(job, code))
        else:  # adopted: the worker's own outcome file says how it ended
            ended = out.get("status") in ("completed", "stopped", "diverged")
            job.status = "done" if ended else "failed"
            job.error = None if ended else (out.get("error") or self._tail(job, None))
        job.pid = None
        self._save(job)

    def _outcome(self, job: Job) -> dict[str, Any]:
        try:
            return json.loads(self._path(job, ".out.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _tail(self, job: Job, code: int | None) -> str:
        try:
            lines = self._path(job, ".log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "the worker ended without a message"
        return "\n".join(lines[-5:]) or f"the worker exited with status {code}"
