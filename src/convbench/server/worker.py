"""The process one run started from the web app lives in (never the web server's own).

``python -m convbench.server.worker JOB.json`` reads the job (store URL, and a config to
train, a run id to resume, a config and an LR range test spec, or a search spec), trains
through
:func:`convbench.training.train` (or :func:`~convbench.training.lr_finder.run_range_test`,
as ``convbench lr-find`` does; or :func:`convbench.search.search`) — the same
call as ``convbench train``, so a run from the page gives the numbers the command line gives
for its config and seed — and writes its progress and outcome beside the job file
(``JOB.out.json``: run id, status, error). Pause and stop requests arrive through the run's
``control`` file (:mod:`convbench.server.control`); SIGTERM stops it resumably as in the CLI.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConvbenchError
from . import control

BATCH_EVERY_S = 0.2  # a point per batch at most this often: small files, smooth curves
SMOOTHING = 0.9  # exponential moving average of the per-batch loss
CHECK_EVERY_S = 0.1  # how often a step looks for a stop request


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class Watcher:
    """The hooks of one run: records batches, honours pause/stop requests."""

    def __init__(self, out: Path, job: str):
        self.out, self.job = out, job
        self.run_dir: Path | None = None
        self.smooth: float | None = None
        self.started = time.perf_counter()
        self.last_point = self.last_check = 0.0

    def on_start(self, run_id: str, run_dir: Path) -> None:
        self.run_dir = run_dir
        _write(run_dir / control.WORKER, {"pid": os.getpid(), "job": self.job})
        _write(self.out, {"run_id": run_id, "status": "running"})

    def on_step(self, iteration: int, loss: float) -> None:
        raw = float(loss)
        previous = raw if self.smooth is None else self.smooth
        self.smooth = SMOOTHING * previous + (1 - SMOOTHING) * raw
        now = time.perf_counter()
        if now - self.last_point >= BATCH_EVERY_S and self.run_dir is not None:
            self.last_point = now
            point = {"it": iteration, "loss": self.smooth, "raw": raw,
                     "t": round(now - self.started, 3)}
            with open(self.run_dir / control.BATCHES, "a") as f:
                f.write(json.dumps(point) + "\n")
        if now - self.last_check >= CHECK_EVERY_S and self.run_dir is not None:
            self.last_check = now
            if control.requested(self.run_dir) == "stop":
                raise KeyboardInterrupt  # the lifecycle records "stopped"; resumable

    def on_epoch(self, epoch: int, row: dict) -> bool:
        return self.run_dir is not None and control.requested(self.run_dir) in ACTIONS_AT_EPOCH


ACTIONS_AT_EPOCH = ("pause", "stop")


def main(argv: list[str] | None = None) -> int:
    """Run the job named on the command line; the exit status says how it went."""
    job_file = Path((argv or sys.argv[1:])[0])
    job = json.loads(job_file.read_text())
    out = job_file.with_suffix(".out.json")
    watcher = Watcher(out, job["id"])
    from ..store import Store
    from ..training import train
    from ..training.lifecycle import Stopped

    try:
        store = Store(job["store"])
        if job.get("search"):
            from ..search import search

            group = search(job["search"], store=store, quiet=True)
            _write(out, {"group_id": group["id"], "status": "completed"})
            return 0
        if job.get("lr_find"):
            from ..training.lr_finder import make_spec, run_range_test

            run = run_range_test(job["config"], make_spec(**job["lr_find"]), store=store)
        else:
            run = train(job.get("config"), store=store, quiet=True, resume=job.get("resume"),
                        on_start=lambda rid: watcher.on_start(rid, store.run_dir(rid)),
                        on_step=watcher.on_step, on_epoch=watcher.on_epoch)
    except (KeyboardInterrupt, Stopped) as stop:
        _write(out, {"run_id": getattr(stop, "run_id", None), "status": "stopped"})
        return 0
    except ConvbenchError as err:
        _write(out, {**_previous(out), "status": "failed", "error": str(err)})
        return 2
    except Exception as err:  # the run records it as failed; the page shows it
        _write(out, {**_previous(out), "status": "failed",
                     "error": f"{type(err).__name__}: {err}"})
        return 1
    _write(out, {"run_id": run.id, "status": run.status})
    return 0


def _previous(out: Path) -> dict:
    try:
        return json.loads(out.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


if __name__ == "__main__":
    sys.exit(main())
