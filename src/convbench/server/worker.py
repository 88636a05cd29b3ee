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
from typing import TYPE_CHECKING, Any

from ..atomic import write_text
from ..errors import ConvbenchError
from . import control

if TYPE_CHECKING:  # torch is imported by the job itself, after its outcome file is named
    from ..training.trainer import StepSample

BATCH_EVERY_S = 0.2  # a point at most this often: small files, smooth curves, few host syncs
SMOOTHING = 0.6  # exponential moving average over the points (each already a window's mean)
CHECK_EVERY_S = 0.1  # how often a step looks for a stop request


def _write(path: Path, data: dict[str, Any]) -> None:
    write_text(path, json.dumps(data))  # whole or not at all: the server reads it any time


def window_mean(now: dict, before: dict | None, key: str) -> float | None:
    """The mean of ``key`` over the steps since ``before``, from two samples of the task's
    running means over the epoch (the mean so far, at step ``step`` of epoch ``epoch``).

    >>> window_mean({"epoch": 1, "step": 30, "loss": 1.0}, {"epoch": 1, "step": 10, "loss": 2.0},
    ...             "loss")
    0.5
    >>> window_mean({"epoch": 2, "step": 5, "loss": 1.0}, {"epoch": 1, "step": 10, "loss": 2.0},
    ...             "loss")
    1.0
    """
    value = now.get(key)
    if value is None or before is None or before.get(key) is None:
        return value
    if before["epoch"] != now["epoch"] or before["step"] >= now["step"]:
        return value  # a new epoch: its running mean is the mean of its steps so far
    return ((value * now["step"] - before[key] * before["step"])
            / (now["step"] - before["step"]))


class Watcher:
    """The hooks of one run: records batch points, honours pause/stop requests."""

    def __init__(self, out: Path, job: str):
        self.out, self.job = out, job
        self.run_dir: Path | None = None
        self.smooth: dict[str, float] = {}
        self.previous: dict | None = None
        self.started = time.perf_counter()
        self.last_point = self.last_check = 0.0

    def on_start(self, run_id: str, run_dir: Path) -> None:
        self.run_dir = run_dir
        _write(run_dir / control.WORKER, {"pid": os.getpid(), "job": self.job})
        _write(self.out, {"run_id": run_id, "status": "running"})

    def on_step(self, iteration: int, sample: StepSample) -> None:
        # One clock read per step; the figures (a host sync) only when a point is due.
        now = time.perf_counter()
        if now - self.last_point >= BATCH_EVERY_S and self.run_dir is not None:
            self.last_point = now
            point = self.point(iteration, sample(), round(now - self.started, 3))
            with open(self.run_dir / control.BATCHES, "a") as f:
                f.write(json.dumps(point) + "\n")
        if now - self.last_check >= CHECK_EVERY_S and self.run_dir is not None:
            self.last_check = now
            if control.requested(self.run_dir) == "stop":
                raise KeyboardInterrupt  # the lifecycle records "stopped"; resumable

    def point(self, iteration: int, figures: dict, t: float) -> dict:
        """A batch point: the loss and accuracy over the steps since the last point
        (``raw_*``), smoothed over the points, and the LR of this step.

        >>> w = Watcher(Path("out.json"), "job")
        >>> w.point(5, {"epoch": 1, "step": 5, "loss": 2.0, "acc": 0.2, "lr": 0.1}, 0.2)["loss"]
        2.0
        >>> second = {"epoch": 1, "step": 10, "loss": 1.5, "acc": 0.4, "lr": 0.1}
        >>> w.point(10, second, 0.4)["raw_loss"]  # the mean of steps 6 to 10
        1.0
        """
        point: dict[str, Any] = {"it": iteration, "t": t, "lr": figures.get("lr")}
        for key in ("loss", "acc"):
            raw = window_mean(figures, self.previous, key)
            if raw is None:
                continue
            before = self.smooth.get(key, raw)
            self.smooth[key] = SMOOTHING * before + (1 - SMOOTHING) * raw
            point[key], point["raw_" + key] = self.smooth[key], raw
        self.previous = figures
        return point

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
    from ..training.lifecycle import Stopped, stop_on_signals

    try:
        # SIGTERM (the server's Stop or shutdown) at any point ends the job as stopped.
        with stop_on_signals():
            store = Store(job["store"])
            if job.get("search"):
                from ..search import search

                group = search(job["search"], store=store, quiet=True,
                               on_start=lambda gid: _write(out, {"group_id": gid,
                                                                 "status": "running"}))
                _write(out, {"group_id": group["id"], "status": group["status"]})
                return 0
            if job.get("lr_find"):
                from ..training.lr_finder import make_spec, run_range_test

                run = run_range_test(job["config"], make_spec(**job["lr_find"]), store=store)
            else:
                run = train(job.get("config"), store=store, quiet=True, resume=job.get("resume"),
                            on_start=lambda rid: watcher.on_start(rid, store.run_dir(rid)),
                            on_step=watcher.on_step, on_epoch=watcher.on_epoch)
    except (KeyboardInterrupt, Stopped) as stop:
        # A search's SIGTERM (Stop on its page) leaves the search stopped, resumable.
        before = _previous(out)
        _write(out, {**before, "run_id": getattr(stop, "run_id", None) or before.get("run_id"),
                     "status": "stopped"})
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
