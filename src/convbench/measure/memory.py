"""Peak memory of a stretch of work (training, evaluation, a search trial).

On the CPU the figure is the process's resident set size (RSS): what the operating system
actually holds for it, so it includes the Python interpreter, torch and the data in memory.
A background thread samples it every ``interval_s`` (50 ms); allocations that live for a
shorter time can fall between samples, so the kernel's own lifetime peak (``ru_maxrss``) is
used as a floor whenever it rose during the window.  On CUDA the figure is
``torch.cuda.max_memory_allocated`` — tensors only, not the CUDA context or the caching
allocator's reserve — reset when the measurement starts.

>>> with PeakMemory("cpu") as peak:
...     block = bytearray(50 * 2**20)
>>> peak.result["memory_method"], peak.result["peak_memory_bytes"] > 50 * 2**20
('rss', True)
"""

from __future__ import annotations

import sys
import threading

import psutil
import torch

try:
    import resource
except ImportError:  # Windows has no getrusage; the sampled peak is then the only source.
    resource = None


class PeakMemory:
    """Measure peak memory between :meth:`start` and :meth:`stop` (or a ``with`` block).

    ``stop()`` returns, and ``result`` holds, ``{"peak_memory_bytes": int,
    "memory_method": "rss" | "cuda_max_allocated"}``.

    >>> peak = PeakMemory("cpu")
    >>> peak.start()
    >>> peak.stop()["peak_memory_bytes"] > 0
    True
    """

    def __init__(self, device: str | torch.device = "cpu", interval_s: float = 0.05):
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.result: dict | None = None
        self._running = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._peak_rss = 0
        self._maxrss_start = 0

    @property
    def method(self) -> str:
        return "cuda_max_allocated" if self.device.type == "cuda" else "rss"

    def start(self) -> None:
        """Begin a measurement (resets the CUDA peak counter on CUDA)."""
        if self._running:
            raise RuntimeError("PeakMemory already started")
        self._running = True
        self.result = None
        if self.method == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        self._process = psutil.Process()
        self._maxrss_start = _maxrss_bytes()
        self._peak_rss = self._process.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="convbench-peak-memory",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        """End the measurement and return the result dict."""
        if not self._running:
            raise RuntimeError("PeakMemory.stop() called before start()")
        if self.method == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            peak = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak_rss, self._process.memory_info().rss)
            maxrss = _maxrss_bytes()
            if maxrss > self._maxrss_start:
                # The lifetime peak moved, so it was reached inside this window.
                peak = max(peak, maxrss)
        self._thread = None
        self._running = False
        self.result = {"peak_memory_bytes": peak, "memory_method": self.method}
        return self.result

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                rss = self._process.memory_info().rss
            except psutil.Error:
                return
            if rss > self._peak_rss:
                self._peak_rss = rss

    def __enter__(self) -> PeakMemory:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def memory_in_use(device: str | torch.device = "cpu") -> int:
    """Memory held now, for traces over a run: the process RSS on the CPU; on CUDA the
    peak of allocated tensors so far (what limits the batch size on a GPU).

    >>> memory_in_use("cpu") > 0
    True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return psutil.Process().memory_info().rss


def _maxrss_bytes() -> int:
    if resource is None:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024
