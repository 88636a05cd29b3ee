"""Energy, cost and CO2 of a stretch of work, measured where the machine allows.

The source is chosen per device (see :mod:`convbench.measure.power`): NVML on a CUDA GPU when
``nvidia-ml-py`` is installed, RAPL counters on a CPU when ``/sys/class/powercap`` is
readable, otherwise an estimate from the process's CPU time and memory.  The method is
always returned with the figure and estimates carry ``energy_estimated: True``.  Why this is
home-made rather than codecarbon: see docs/measuring.md.

>>> meter = EnergyMeter("cpu", price_per_kwh=0.25)
>>> with meter:
...     _ = sum(i * i for i in range(100_000))
>>> r = meter.result
>>> r["energy_j"] > 0 and r["cost"] == r["energy_kwh"] * 0.25
True
"""

from __future__ import annotations

import threading
import time

import torch

from ..config import JOULES_PER_KWH, PRICE_PER_KWH
from .power import DEFAULT_CPU_WATTS_PER_CORE, pick_source


class EnergyMeter:
    """Measure energy between :meth:`start` and :meth:`stop` (or over a ``with`` block).

    ``stop()`` returns, and ``result`` holds: ``energy_j``, ``energy_kwh``, ``energy_method``
    (``"rapl"``, ``"nvml"`` or ``"estimate"``), ``energy_estimated``, ``mean_power_w``,
    ``cost`` (``energy_kwh × price_per_kwh``, in the price's currency) and ``co2_g``
    (``energy_kwh × grid_gco2_per_kwh``, or None without a grid factor).
    ``cpu_watts_per_core`` tunes the estimate only.

    >>> meter = EnergyMeter("cpu", grid_gco2_per_kwh=56)
    >>> meter.start()
    >>> sorted(meter.stop())[:3]
    ['co2_g', 'cost', 'energy_estimated']
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        price_per_kwh: float = PRICE_PER_KWH,
        grid_gco2_per_kwh: float | None = None,
        *,
        cpu_watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE,
    ):
        if price_per_kwh < 0 or (grid_gco2_per_kwh is not None and grid_gco2_per_kwh < 0):
            raise ValueError("price_per_kwh and grid_gco2_per_kwh must not be negative")
        self.device = torch.device(device)
        self.price_per_kwh = price_per_kwh
        self.grid_gco2_per_kwh = grid_gco2_per_kwh
        self.cpu_watts_per_core = cpu_watts_per_core
        self.result: dict | None = None
        self._source = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        """Whether the meter counts now (between :meth:`start` and :meth:`stop`)."""
        return self._source is not None

    def start(self) -> None:
        """Pick the energy source and begin counting."""
        if self._source is not None:
            raise RuntimeError("EnergyMeter already started")
        self.result = None
        self._source = pick_source(self.device, self.cpu_watts_per_core)
        self._stop.clear()
        self._start_s = time.perf_counter()
        self._source.begin()
        self._thread = threading.Thread(target=self._sample, name="convbench-energy",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        """Stop counting and return the result dict."""
        if self._source is None:
            raise RuntimeError("EnergyMeter.stop() called before start()")
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.synchronize(self.device)  # queued kernels belong to this window
        self._stop.set()
        self._thread.join()
        joules = max(0.0, float(self._source.end()))
        seconds = time.perf_counter() - self._start_s
        source, self._source = self._source, None
        kwh = joules / JOULES_PER_KWH
        self.result = {
            "energy_j": joules,
            "energy_kwh": kwh,
            "energy_method": source.method,
            "energy_estimated": source.estimated,
            "mean_power_w": joules / seconds if seconds > 0 else 0.0,
            "cost": kwh * self.price_per_kwh,
            "co2_g": kwh * self.grid_gco2_per_kwh if self.grid_gco2_per_kwh is not None else None,
        }
        return self.result

    def _sample(self) -> None:
        while not self._stop.wait(self._source.interval_s):
            try:
                self._source.sample()
            except Exception:
                # A reading that fails now will fail again in stop(), where it is reported;
                # a dying sampler thread must not take the run down with it.
                return

    def __enter__(self) -> EnergyMeter:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
