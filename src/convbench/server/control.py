"""Files in a run's folder through which the web app and a worker talk.

- ``control``: written by the server, read by the worker: ``pause`` (stop after the current
  epoch, checkpointed) or ``stop`` (stop now; the last checkpoint stays).
- ``worker.json``: written by the worker when its run is stored: its process id and job, so
  a restarted server knows the run can be paused or stopped from the page.
- ``batches.jsonl``: the worker's per-batch progress (iteration, smoothed loss and accuracy,
  LR, time; a point every ~0.2 s), read by the live view. The store keeps per-epoch rows;
  these are only for watching.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> request(folder, "pause"); requested(folder)
'pause'
"""

from __future__ import annotations

import json
from pathlib import Path

CONTROL = "control"
WORKER = "worker.json"
BATCHES = "batches.jsonl"
ACTIONS = ("pause", "stop")
MAX_POINTS = 2000  # batch points sent to a page: the newest, thinned evenly


def request(run_dir: Path, action: str) -> None:
    """Ask the run's worker to ``pause`` or ``stop``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    (run_dir / CONTROL).write_text(action)


def requested(run_dir: Path) -> str | None:
    """The pending request, or None."""
    try:
        return (run_dir / CONTROL).read_text().strip() or None
    except FileNotFoundError:
        return None


def clear(run_dir: Path) -> None:
    """Forget a request (before a run is resumed)."""
    (run_dir / CONTROL).unlink(missing_ok=True)


def worker_of(run_dir: Path) -> dict | None:
    """What the run's worker recorded about itself, or None (a run from the command line)."""
    try:
        return json.loads((run_dir / WORKER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def batch_points(run_dir: Path, after: int = 0) -> list[dict]:
    """The per-batch points with iteration above ``after`` (thinned to :data:`MAX_POINTS`).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / BATCHES).write_text('{"it": 1, "loss": 2.0}\\n{"it": 2, "loss": 1.5}\\n{"it')
    >>> [p["it"] for p in batch_points(folder)]
    [1, 2]
    """
    try:
        lines = (run_dir / BATCHES).read_text().splitlines()
    except FileNotFoundError:
        return []
    points = []
    for line in lines:
        try:
            point = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written right now
        if point.get("it", 0) > after:
            points.append(point)
    step = max(1, len(points) // MAX_POINTS)
    return points[::step] if step > 1 else points
