"""One life for every stored run: train, lr-find, svm, detect, evaluate alike.

:func:`recorded_run` creates the run in the store (or takes a stopped one back), and owns
what happens to it whatever the work inside does: the status (``completed`` or what the work
sets, ``stopped`` on Ctrl-C/SIGTERM, ``failed`` with the error's message), the environment,
the energy and peak memory of the work, and the artifacts that exist when it ends. The work
itself only fills in ``metrics``, ``artifacts`` and, where it is not a success, ``status``.

>>> from convbench.store import Store
>>> store = Store(getattr(__import__("tempfile"), "mkdtemp")() + "/runs.db")
>>> with recorded_run(store, "demo", {"name": "x"}, seed=0) as run:
...     run.metrics["answer"] = 42
>>> stored = store.get_run(run.id)
>>> stored["status"], stored["metrics"]["answer"], stored["metrics"]["energy_j"] >= 0
('completed', 42, True)
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..atomic import DiskFull, is_disk_full
from ..config import JOULES_PER_KWH, PRICE_PER_KWH
from ..errors import ConvbenchError, StoreError
from ..measure.energy import EnergyMeter
from ..measure.memory import PeakMemory
from ..results import Run
from ..runlog import LOG, append_log
from ..store import Store
from .checkpoint import CheckpointRefused
from .device import environment, select_device


class Stopped(Exception):
    """SIGTERM during a run: the last checkpoint stays, the run can be resumed."""


class Abandoned(Exception):
    """The run was taken over by another process (a search worker whose trial was re-queued
    while it was cut off): this one stops and leaves the run's record to the new owner."""


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM into :class:`Stopped` (Ctrl-C already raises KeyboardInterrupt)."""

    def handler(signum, frame):
        raise Stopped(signal.Signals(signum).name)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def error_text(err: BaseException) -> str:
    """The message a failed run keeps: a user error as it was told, anything else with its
    type (``ValueError: …``) so the cause is still recognisable in ``runs show``.

    >>> error_text(ConvbenchError("No such file")), error_text(ValueError("bad"))
    ('No such file', 'ValueError: bad')
    """
    if isinstance(err, ConvbenchError):
        return str(err)
    return f"{type(err).__name__}: {err}"


def energy_figures(energy_j: float, method: dict[str, Any] | None = None, *,
                   price_per_kwh: float = PRICE_PER_KWH,
                   grid_gco2_per_kwh: float | None = None) -> dict[str, Any]:
    """kWh, cost and CO2 of ``energy_j`` joules; ``method`` is an :class:`EnergyMeter` result
    (its ``energy_method`` and ``energy_estimated`` are passed on).

    >>> energy_figures(3.6e6, price_per_kwh=0.25)["cost"]
    0.25
    """
    method = method or {}
    kwh = energy_j / JOULES_PER_KWH
    return {
        "energy_j": energy_j,
        "energy_kwh": kwh,
        "energy_method": method.get("energy_method"),
        "energy_estimated": method.get("energy_estimated"),
        "mean_power_w": method.get("mean_power_w"),
        "cost": kwh * price_per_kwh,
        "co2_g": kwh * grid_gco2_per_kwh if grid_gco2_per_kwh is not None else None,
    }


def resume_target(store: Store, resume: str, kind: str, what: str | None = None) -> dict[str, Any]:
    """The stored run ``resume`` (an id or its prefix) if it can be continued as ``kind``
    (``what`` names that kind in the message, e.g. "detection").

    Raises :class:`StoreError` for a run of another kind or one that already completed.
    """
    run_id = store.resolve_id(resume)
    stored = store.get_run(run_id)
    if stored["kind"] != kind:
        raise StoreError(f"Run {run_id} is a {stored['kind']} run, not a {what or kind} run.")
    if stored["status"] == "completed":
        raise StoreError(f"Run {run_id} already completed; nothing to resume.")
    return stored


def resumed_config(store: Store, resume: str, kind: str, build: Callable[..., Any],
                   what: str | None = None) -> tuple[str, Any]:
    """``(run id, config)`` of the stopped run ``resume`` of ``kind``, its stored config
    validated again by ``build(data, source=…)`` (the config schema's builder)."""
    target = resume_target(store, resume, kind, what)
    return target["id"], build(target["config"], source=f"run {target['id']}")


class RecordedRun:
    """The handle :func:`recorded_run` yields: the run's id and folder, and what to store.

    ``artifacts`` maps a name to a file name inside :attr:`dir`; only files that exist when
    the run ends are recorded (as full paths).
    """

    def __init__(self, store: Store, run_id: str, kind: str, resumed: bool,
                 meter: EnergyMeter | None):
        self.store, self.id, self.kind, self.resumed = store, run_id, kind, resumed
        self.dir: Path = store.run_dir(run_id)
        self.status = "completed"
        self.metrics: dict[str, Any] = {}
        self.artifacts: dict[str, str] = {"log": LOG}
        # Joules and metered seconds of the run's earlier (resumed) segments, from the
        # checkpoint: the run's energy and mean power cover all of its segments.
        self.energy_before_j = 0.0
        self.energy_before_s = 0.0
        self._meter = meter
        self._banked_j = 0.0
        self._started = time.perf_counter()
        self._seconds = 0.0
        self._method: dict[str, Any] = {}

    def log(self, *lines: str) -> None:
        """Append time-stamped lines to the run's ``train.log``."""
        append_log(self.dir / LOG, list(lines))

    def energy_j(self) -> float:
        """Joules used by the run so far, earlier (resumed) segments included; a checkpoint
        stores this so that a resumed run counts all of its energy."""
        if self._meter is not None:
            self._bank()
            self._meter.start()
        return self.energy_before_j + self._banked_j

    def energy_so_far(self) -> tuple[float, float]:
        """``(joules, metered seconds)`` of the run so far, earlier segments included: what a
        checkpoint banks (``energy_j``, ``energy_s``) for a resumed run to count on."""
        joules = self.energy_j()
        return joules, self.energy_before_s + self._seconds

    def _bank(self) -> None:
        # A SIGTERM may land between a stop and the next start: then nothing is running
        # and there is nothing to bank (stopping again would raise and hide the stop).
        if self._meter is not None and self._meter.running:
            self._method = self._meter.stop()
            self._banked_j += self._method["energy_j"]
            self._seconds = time.perf_counter() - self._started

    def _close_meter(self) -> None:
        self._bank()
        self._meter = None

    def _energy_metrics(self, price: float, grid: float | None) -> dict[str, Any]:
        joules = self.energy_before_j + self._banked_j
        seconds = self.energy_before_s + self._seconds
        # Mean power of the whole run (docs/measuring.md: energy_j / wall time), not of the
        # meter's last segment (since the last checkpoint).
        method = self._method | {"mean_power_w": joules / seconds if seconds > 0 else None}
        return energy_figures(joules, method, price_per_kwh=price, grid_gco2_per_kwh=grid)

    def _artifact_paths(self) -> dict[str, str]:
        return {k: str(self.dir / f) for k, f in self.artifacts.items() if (self.dir / f).exists()}


@contextmanager
def recorded_run(store: Store, kind: str, config: dict[str, Any], *, seed: int = 0,
                 name: str | None = None, device: str | torch.device = "cpu",
                 threads: int | None = None, group_id: str | None = None,
                 resume: str | None = None, energy: bool = True, memory: bool = True,
                 price_per_kwh: float = PRICE_PER_KWH,
                 grid_gco2_per_kwh: float | None = None) -> Iterator[RecordedRun]:
    """Create (or, with ``resume`` = a run id, take back) a stored run of ``kind`` and record
    how the work inside the ``with`` block ends.

    - normal end: ``run.status`` (``completed`` unless the work set another), ``run.metrics``
      plus energy and peak memory of the work (``energy=False``/``memory=False`` leave them
      to the work), the existing ``run.artifacts``;
    - Ctrl-C or SIGTERM: status ``stopped`` (resumable from the last checkpoint); the exception
      goes on with ``run_id`` set, for the caller's "continue with --resume ID" line;
    - a resume refused for its checkpoint (:class:`~.checkpoint.CheckpointRefused`): the
      status it had before (a run a kill left ``running`` stays so), then re-raised;
    - :class:`Abandoned`: nothing is written (another process owns the run now);
    - any other exception: status ``failed`` with :func:`error_text` of it, then re-raised.
    """
    dev = select_device(str(device)) if not isinstance(device, torch.device) else device
    before = None
    if resume:
        run_id = store.resolve_id(resume)
        before = store.get_run(run_id)["status"]
        # Artifacts at a URL: the latest checkpoint is there, wherever the run trained last.
        store.artifacts.fetch(run_id)
        store.update(run_id, status="running")
    else:
        n = threads if threads is not None else torch.get_num_threads()
        run_id = store.create_run(name=name, config=config, seed=seed,
                                  env=environment(dev, n), kind=kind, device=str(dev),
                                  group_id=group_id)
    meter = EnergyMeter(str(dev), price_per_kwh, grid_gco2_per_kwh) if energy else None
    run = RecordedRun(store, run_id, kind, bool(resume), meter)
    peak = PeakMemory(dev) if memory else None
    try:
        if peak is not None:
            peak.start()
        if meter is not None:
            meter.start()
        with stop_on_signals():
            yield run
    except Abandoned:
        raise  # the run is someone else's now: writing stopped/failed would clobber theirs
    except (KeyboardInterrupt, Stopped) as stop:
        _push_quietly(store, run_id)
        store.update(run_id, status="stopped", ended=True)
        stop.run_id = run_id  # the CLI names it in its "continue with --resume" line
        raise
    except CheckpointRefused:
        store.update(run_id, status=before)  # a refused resume changes nothing
        raise
    except BaseException as err:
        if isinstance(err, Exception) and is_disk_full(err, run.dir):
            # Its last checkpoint is whole: the run can go on once there is room again.
            store.update(run_id, status="stopped", ended=True)
            reason = str(err) if isinstance(err, DiskFull) else \
                f"No space left in {run.dir}: free some space there."
            raise DiskFull(f"{reason}\nThen continue run {run_id} with --resume {run_id}.") \
                from None
        _push_quietly(store, run_id)  # its log says what happened, on any machine
        store.update(run_id, status="failed", metrics={"error": error_text(err)}, ended=True)
        raise
    finally:
        run._close_meter()
        used = peak.stop() if peak is not None else {}
    metrics = dict(run.metrics)
    if energy:
        metrics |= run._energy_metrics(price_per_kwh, grid_gco2_per_kwh)
    if memory:
        metrics |= used
    if store.artifacts.url:  # where another machine finds its files
        store.artifacts.push(run_id)
        metrics["artifacts_at"] = f"{store.artifacts.url.rstrip('/')}/{run_id}"
    store.update(run_id, status=run.status, metrics=metrics, artifacts=run._artifact_paths(),
                 ended=True)


def _push_quietly(store: Store, run_id: str) -> None:
    """Push a run that ends early; an unreachable location must not hide why it ended."""
    try:
        store.artifacts.push(run_id)
    except ConvbenchError:
        pass


def stored(run: RecordedRun) -> Run:
    """The finished run as the store has it."""
    return Run(run.store.get_run(run.id))
