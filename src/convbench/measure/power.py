"""Energy sources for :class:`convbench.measure.energy.EnergyMeter`: RAPL, NVML or an estimate.

Each source has ``begin()``, ``sample()`` (called every ``interval_s`` by the meter's thread,
so counters that wrap and power readings are caught in time) and ``end() -> joules``.
``pick_source(device)`` returns the best one the machine allows.

>>> src = EstimateSource()
>>> src.begin(); src.sample(); src.end() >= 0
True
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import torch

POWERCAP = Path("/sys/class/powercap")
# Default busy power of one CPU core, used when nothing on the machine can be read.  It is
# TDP / cores for a typical desktop or laptop part (65 W / 6 cores ≈ 11 W, 28 W / 4 = 7 W);
# server parts are lower (225 W / 48 ≈ 5 W), so on servers the estimate errs high.
DEFAULT_CPU_WATTS_PER_CORE = 10.0
# DRAM power per GB held, the figure codecarbon used (3 W per 8 GB).
RAM_WATTS_PER_GB = 0.375


class RaplSource:
    """CPU package (and DRAM, when exposed) energy from Linux powercap RAPL counters.

    RAPL counts the whole socket, so on a shared machine it includes other processes.
    Counters wrap at ``max_energy_range_uj``; sampling at least every few minutes keeps at
    most one wrap between two readings.
    """

    method = "rapl"
    estimated = False
    interval_s = 10.0

    def __init__(self, domains: list[Path]):
        self.domains = domains
        self._range = [int((d / "max_energy_range_uj").read_text()) for d in domains]
        self._last: list[int] = []
        self._total_uj = 0

    @classmethod
    def find(cls, root: Path = POWERCAP) -> RaplSource | None:
        """The readable RAPL domains under ``root``, or None (absent, or root-only)."""
        domains = []
        for d in sorted(root.glob("intel-rapl:*")):
            name = _read(d / "name") or ""
            # Top-level zones are packages; of the sub-zones only DRAM is outside the package
            # (core/uncore are parts of it and would be counted twice).
            if d.name.count(":") == 1 or name == "dram":
                domains.append(d)
        if not domains:
            return None
        for d in domains:
            if _read(d / "energy_uj") is None or _read(d / "max_energy_range_uj") is None:
                return None
        return cls(domains)

    def begin(self) -> None:
        self._last = self._read_all()
        self._total_uj = 0

    def sample(self) -> None:
        now = self._read_all()
        for i, (before, after) in enumerate(zip(self._last, now, strict=True)):
            self._total_uj += after - before if after >= before else after + self._range[i] - before
        self._last = now

    def end(self) -> float:
        self.sample()
        return self._total_uj / 1e6

    def _read_all(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]


class NvmlSource:
    """GPU board energy from NVML: the energy counter (Volta and newer) or power sampling.

    Only the GPU is counted, not the host CPU feeding it.
    """

    method = "nvml"
    estimated = False

    def __init__(self, nvml, handle):
        self._nvml = nvml
        self._handle = handle
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            self._counter = True
        except nvml.NVMLError:
            self._counter = False
        # The counter needs no sampling; power readings must be frequent to integrate well.
        self.interval_s = 30.0 if self._counter else 0.1

    @classmethod
    def find(cls, device: torch.device) -> NvmlSource | None:
        """An NVML source for a CUDA ``device`` if pynvml is installed and works, else None."""
        if device.type != "cuda" or not torch.cuda.is_available():
            return None
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            return cls(pynvml, _nvml_handle(pynvml, device))
        except pynvml.NVMLError:
            return None

    def begin(self) -> None:
        self._joules = 0.0
        self._start_mj = self._energy_mj() if self._counter else 0
        self._last = (time.perf_counter(), self._power_w())

    def sample(self) -> None:
        if self._counter:
            return
        now = (time.perf_counter(), self._power_w())
        self._joules += (now[0] - self._last[0]) * (now[1] + self._last[1]) / 2
        self._last = now

    def end(self) -> float:
        if self._counter:
            joules = (self._energy_mj() - self._start_mj) / 1000.0
        else:
            self.sample()
            joules = self._joules
        self._nvml.nvmlShutdown()
        return joules

    def _energy_mj(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def _power_w(self) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0


class EstimateSource:
    """Energy estimated from this process's CPU time and resident memory.

    CPU: ``watts_per_core`` × CPU seconds used (user + system, children included), i.e. a
    power model of TDP / cores scaled by the process's utilisation.  Memory:
    ``RAM_WATTS_PER_GB`` × mean resident GB × wall time.  Idle power of the machine is not
    attributed to the run.
    """

    method = "estimate"
    estimated = True
    interval_s = 1.0

    def __init__(self, watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE):
        if watts_per_core <= 0:
            raise ValueError(f"watts_per_core must be positive, got {watts_per_core}")
        self.watts_per_core = watts_per_core
        self._process = psutil.Process()

    def begin(self) -> None:
        self._cpu0 = self._cpu_seconds()
        self._rss_gb_s = 0.0
        self._last = (time.perf_counter(), self._rss_gb())

    def sample(self) -> None:
        now = (time.perf_counter(), self._rss_gb())
        self._rss_gb_s += (now[0] - self._last[0]) * (now[1] + self._last[1]) / 2
        self._last = now

    def end(self) -> float:
        self.sample()
        cpu_j = self.watts_per_core * (self._cpu_seconds() - self._cpu0)
        return cpu_j + RAM_WATTS_PER_GB * self._rss_gb_s

    def _cpu_seconds(self) -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def _rss_gb(self) -> float:
        return self._process.memory_info().rss / 2**30


def pick_source(device: torch.device, watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE):
    """NVML for CUDA devices, RAPL for the CPU, else the estimate."""
    if device.type == "cuda":
        source = NvmlSource.find(device)
    elif device.type == "cpu":
        source = RaplSource.find()
    else:
        source = None
    return source or EstimateSource(watts_per_core)


def _nvml_handle(nvml, device: torch.device):
    index = device.index if device.index is not None else torch.cuda.current_device()
    # torch numbers GPUs after CUDA_VISIBLE_DEVICES, NVML does not: match on the UUID.
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        try:
            return nvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        except nvml.NVMLError:
            pass
    return nvml.nvmlDeviceGetHandleByIndex(index)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
