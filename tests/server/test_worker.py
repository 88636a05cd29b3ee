"""The worker process of ``convbench serve`` on its own: the batch points it writes."""

from __future__ import annotations

import json
import subprocess
import sys

from convbench.server import control
from convbench.server.worker import BATCH_EVERY_S
from convbench.store import Store


def test_batch_points_carry_loss_accuracy_and_lr_at_most_every_interval(tmp_path):
    store = tmp_path / "runs.db"
    config = {"data": {"dataset": "digits"}, "model": {"name": "B2FL8"},
              "train": {"epochs": 8, "batch_size": 16}, "measure": {"cost": False}}
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"id": "j1", "store": str(store), "config": config}))
    subprocess.run([sys.executable, "-m", "convbench.server.worker", str(job)], check=True,
                   timeout=600)
    run_id = json.loads(job.with_suffix(".out.json").read_text())["run_id"]
    with Store(str(store)) as opened:
        run = opened.get_run(run_id)
        points = control.batch_points(opened.run_dir(run_id))
    assert run["status"] == "completed" and len(points) >= 3
    iterations = [p["it"] for p in points]
    assert iterations == sorted(set(iterations))
    # Points at most every BATCH_EVERY_S (the figures are read only then), not every batch.
    gaps = [b["t"] - a["t"] for a, b in zip(points, points[1:], strict=False)]
    assert min(gaps) >= BATCH_EVERY_S - 0.002
    steps = iterations[-1]
    assert len(points) < steps
    for p in points:
        assert 0 <= p["acc"] <= 1 and 0 <= p["raw_acc"] <= 1 and p["loss"] > 0
        assert p["lr"] == run["config"]["optim"]["lr"]  # the default constant schedule
    # Smoothed: the curve moves less than the window means it smooths.
    raw = [p["raw_loss"] for p in points]
    smooth = [p["loss"] for p in points]
    assert _wiggle(smooth) < _wiggle(raw)
    # Accuracy per batch goes up as the network learns (digits: ~10 % → well over 50 %).
    assert points[-1]["acc"] > points[0]["acc"] + 0.3


def _wiggle(values: list[float]) -> float:
    return sum(abs(b - a) for a, b in zip(values, values[1:], strict=False))
