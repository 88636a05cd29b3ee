"""PeakMemory sees real allocations, sampled or between samples."""

from __future__ import annotations

import resource
import time

import psutil
import pytest
import torch

from convbench.measure import PeakMemory

MB = 2**20


def rss() -> int:
    return psutil.Process().memory_info().rss


def test_peak_rss_sees_a_200_mb_allocation():
    before = rss()
    with PeakMemory("cpu") as peak:
        block = torch.ones(50 * MB)  # 200 MB of float32, written so it is resident
        time.sleep(0.2)
        del block
    assert peak.result["memory_method"] == "rss"
    assert peak.result["peak_memory_bytes"] - before >= 150 * MB


def test_peak_without_allocation_stays_near_the_current_rss():
    before = rss()
    peak = PeakMemory("cpu")
    peak.start()
    time.sleep(0.1)
    result = peak.stop()
    assert before - 20 * MB <= result["peak_memory_bytes"] <= before + 50 * MB


def test_a_spike_between_samples_is_caught_by_the_kernel_peak():
    # Sampling every 60 s never fires: only ru_maxrss can see this spike.  It must exceed the
    # process's earlier lifetime peak for ru_maxrss to move.
    headroom = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss()
    spike = max(headroom, 0) + 200 * MB
    if spike > 3 * 2**30:
        pytest.skip("earlier tests left a lifetime peak too far above the current RSS")
    before = rss()
    with PeakMemory("cpu", interval_s=60) as peak:
        block = torch.ones(spike // 4)
        del block
    assert peak.result["peak_memory_bytes"] - before >= spike - 50 * MB


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
