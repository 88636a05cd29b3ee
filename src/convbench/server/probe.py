"""The playground's epoch-time estimate: a few timed training steps of a config, on this
machine, in a process of its own (never the web server's).

``python -m convbench.server.probe`` reads a resolved config (JSON) on stdin, loads its data,
times :data:`STEPS` optimiser steps after :data:`WARMUP` untimed ones through the
trainer's own epoch loop (:func:`~convbench.training.steptime.time_steps`), and prints
``{"step_s", "steps_per_epoch", "epoch_s"}``: the median step time times the steps of one
epoch (training only; validation is extra).
"""

from __future__ import annotations

import json
import statistics
import sys

WARMUP = 3
STEPS = 10


def measure(config: dict) -> dict:
    """Time a few steps of ``config``'s training and extrapolate to one epoch."""
    from ..config import build
    from ..data import load_data
    from ..training.classification import batches_per_epoch, with_batch_size
    from ..training.device import set_threads
    from ..training.steptime import time_steps

    cfg = build(config)
    set_threads(cfg.train.threads)
    bundle = load_data(cfg.data, cfg.train.seed)
    cfg = with_batch_size(cfg, bundle)
    gaps, _ = time_steps(cfg, bundle, warmup=WARMUP, steps=STEPS)
    steps = batches_per_epoch(len(bundle.train), cfg.train.batch_size)
    step_s = statistics.median(gaps) if gaps else None
    return {"step_s": step_s, "steps_per_epoch": steps,
            "epoch_s": None if step_s is None else step_s * steps}


def main() -> int:
    try:
        print(json.dumps(measure(json.loads(sys.stdin.read()))))
    except Exception as err:  # reported to the page as the estimate's note
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


IGNORED = {"name": None, "train": ("epochs", "seed", "early_stopping", "max_time_s"),
           "measure": None, "schedule": None, "optim": ("lr",)}


def epoch_key(config: dict) -> str:
    """The part of a config that decides the cost of a step: data, model, batch size,
    device, precision — not the learning rate, the seed or the number of epochs.

    >>> epoch_key({"name": "a", "train": {"epochs": 3, "batch_size": 32}})
    '{"train": {"batch_size": 32}}'
    """
    kept = {}
    for section, value in config.items():
        if section in IGNORED and IGNORED[section] is None:
            continue
        drop = IGNORED.get(section) or ()
        kept[section] = ({k: v for k, v in value.items() if k not in drop}
                         if isinstance(value, dict) else value)
    return json.dumps(kept, sort_keys=True)


class Probes:
    """Work the pages ask for that needs torch and data (an epoch-time probe, a run's
    misclassified images): one process at a time, never in the web server, results cached
    by key; the newest request waiting is served next.

    >>> Probes().get("k", "convbench.server.probe", {}) if False else "ok"
    'ok'
    """

    def __init__(self) -> None:
        import threading

        self._cache: dict[str, dict] = {}
        self._wanted: tuple[str, str, dict] | None = None
        self._lock = threading.Lock()
        self._busy = False
        self._closed = False
        self._proc = None

    def get(self, key: str, module: str, payload: dict) -> dict:
        """The cached result of ``key``, or ``{"measuring": True}`` after asking for it
        (``python -m module`` with ``payload`` as JSON on stdin, its last line JSON out)."""
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            self._wanted = (key, module, payload)
            if not self._busy:
                self._busy = True
                import threading

                threading.Thread(target=self._run, daemon=True).start()
        return {"measuring": True}

    def _run(self) -> None:
        import subprocess

        while True:
            with self._lock:
                if self._closed or self._wanted is None or self._wanted[0] in self._cache:
                    self._busy = False
                    return
                key, module, payload = self._wanted
                self._wanted = None
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", module], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = self._proc.communicate(json.dumps(payload), timeout=600)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                out, err = self._proc.communicate()
            try:
                result = json.loads(out.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                result = {"error": (err.strip().splitlines() or ["probe failed"])[-1]}
            with self._lock:
                self._proc = None
                if not self._closed:
                    self._cache[key] = result

    def close(self) -> None:
        """End a running probe (server shutdown)."""
        with self._lock:
            self._closed = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
