"""PeakMemory sees real allocations, sampled or between samples.

The RSS tests run in a fresh interpreter: after hundreds of tests this process's heap, its
lifetime peak and its threads depend on what ran before, which made an in-process check of
"RSS rose by 200 MB" pass alone and fail in the full suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from convbench.measure import PeakMemory

MB = 2**20

PRELUDE = """
import json, time, psutil, torch
from convbench.measure import PeakMemory
MB = 2**20
def rss():
    return psutil.Process().memory_info().rss
"""


def measure_in_fresh_process(body: str) -> dict:
    """Run ``body`` after PRELUDE in a new interpreter; it must set ``before`` and ``peak``."""
    report = "\nprint(json.dumps({'before': before, **peak.result}))\n"
    script = PRELUDE + textwrap.dedent(body) + report
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_peak_rss_sees_a_200_mb_allocation():
    result = measure_in_fresh_process("""
        before = rss()
        with PeakMemory("cpu") as peak:
            block = torch.ones(50 * MB)  # 200 MB of float32, written so it is resident
            time.sleep(0.2)
            del block
    """)
    assert result["memory_method"] == "rss"
    assert result["peak_memory_bytes"] - result["before"] >= 150 * MB


def test_peak_without_allocation_stays_near_the_current_rss():
    result = measure_in_fresh_process("""
        before = rss()
        peak = PeakMemory("cpu")
        peak.start()
        time.sleep(0.1)
        peak.stop()
    """)
    assert result["before"] - 20 * MB <= result["peak_memory_bytes"] <= result["before"] + 50 * MB


def test_a_spike_between_samples_is_caught_by_the_kernel_peak():
    # Sampling every 60 s never fires, so only the kernel's lifetime peak (ru_maxrss) can see
    # this spike.  Imports can leave that peak ~100 MB above the current RSS, so the spike
    # is sized to pass it by 300 MB.
    result = measure_in_fresh_process("""
        import resource
        def kernel_peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        before = rss()
        spike = kernel_peak() - before + 300 * MB
        with PeakMemory("cpu", interval_s=60) as peak:
            block = torch.ones(spike // 4)
            del block
        peak.result["spike"] = spike
        peak.result["kernel_moved"] = kernel_peak() - (before + spike - 300 * MB)
    """)
    if result["kernel_moved"] < 250 * MB:
        pytest.skip("the kernel's lifetime peak did not record the spike")
    assert result["peak_memory_bytes"] - result["before"] >= result["spike"] - 50 * MB


def test_stop_before_start_and_double_start_are_refused():
    peak = PeakMemory("cpu")
    with pytest.raises(RuntimeError):
        peak.stop()
    peak.start()
    with pytest.raises(RuntimeError):
        peak.start()
    peak.stop()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_peak_is_max_allocated():
    with PeakMemory("cuda") as peak:
        block = torch.ones(50 * MB, device="cuda")
        del block
    assert peak.result["memory_method"] == "cuda_max_allocated"
    assert peak.result["peak_memory_bytes"] >= 200 * MB
