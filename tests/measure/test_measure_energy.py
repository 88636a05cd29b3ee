"""EnergyMeter and its sources: RAPL counters (incl. wrap), the estimate, cost and CO2."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
import torch

from convbench.measure import EnergyMeter
from convbench.measure.power import RAM_WATTS_PER_GB, EstimateSource, RaplSource, pick_source


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def burn_cpu(seconds: float) -> None:
    # CPU time, not wall time: on a shared machine a wall-clock loop may get half a core.
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1


def test_busy_loop_has_energy_method_cost_and_co2():
    meter = EnergyMeter("cpu", price_per_kwh=0.246, grid_gco2_per_kwh=56.0)
    with meter:
        busy(0.5)
    r = meter.result
    assert r["energy_j"] > 0
    assert r["energy_method"] in {"rapl", "estimate"}
    assert r["energy_estimated"] is (r["energy_method"] == "estimate")
    assert r["energy_kwh"] == r["energy_j"] / 3.6e6
    assert r["cost"] == r["energy_kwh"] * 0.246
    assert r["co2_g"] == r["energy_kwh"] * 56.0
    assert r["mean_power_w"] == pytest.approx(r["energy_j"] / 0.5, rel=0.2)


def test_co2_is_none_without_a_grid_factor_and_meter_is_reusable():
    meter = EnergyMeter("cpu")
    meter.start()
    busy(0.05)
    first = meter.stop()
    assert first["co2_g"] is None
    meter.start()
    busy(0.05)
    assert meter.stop()["energy_j"] > 0


def test_stop_before_start_and_double_start_are_refused():
    meter = EnergyMeter("cpu")
    with pytest.raises(RuntimeError):
        meter.stop()
    meter.start()
    with pytest.raises(RuntimeError):
        meter.start()
    meter.stop()


def test_estimate_is_power_per_core_times_cpu_seconds_plus_memory():
    source = EstimateSource(watts_per_core=12.0)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    source.begin()
    burn_cpu(0.4)
    joules = source.end()
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    ram_max = RAM_WATTS_PER_GB * psutil.Process().memory_info().rss / 2**30 * wall_s
    assert 12.0 * cpu_s * 0.95 <= joules <= 12.0 * cpu_s * 1.05 + ram_max
    assert joules > 12.0 * 0.38  # the loop used 0.4 CPU-seconds


def test_estimate_of_an_idle_wait_is_mostly_memory():
    source = EstimateSource(watts_per_core=12.0)
    source.begin()
    time.sleep(0.3)
    assert source.end() < 12.0 * 0.05


def write_zone(zone: Path, name: str, energy_uj: int, max_uj: int) -> None:
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text(name + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")


def test_rapl_counts_packages_and_dram_and_handles_counter_wrap(tmp_path):
    top = tmp_path / "intel-rapl:0"
    write_zone(top, "package-0", 999_000_000, 1_000_000_000)
    write_zone(tmp_path / "intel-rapl:0:0", "core", 5_000_000, 1_000_000_000)
    write_zone(tmp_path / "intel-rapl:0:1", "dram", 1_000_000, 2_000_000)
    source = RaplSource.find(tmp_path)
    assert [d.name for d in source.domains] == ["intel-rapl:0", "intel-rapl:0:1"]
    source.begin()
    # package wraps: +1 J to the top, then +2 J; dram +0.5 J; core (part of the package) ignored
    (top / "energy_uj").write_text("2000000\n")
    (tmp_path / "intel-rapl:0:1" / "energy_uj").write_text("1500000\n")
    (tmp_path / "intel-rapl:0:0" / "energy_uj").write_text("9000000\n")
    source.sample()
    # the dram counter then wraps too: 0.5 J to the top, 0.25 J after
    (tmp_path / "intel-rapl:0:1" / "energy_uj").write_text("250000\n")
    assert source.end() == pytest.approx(1 + 2 + 0.5 + 0.5 + 0.25)


def test_rapl_is_not_used_when_counters_cannot_be_read(tmp_path):
    assert RaplSource.find(tmp_path) is None
    (tmp_path / "intel-rapl:0").mkdir()
    (tmp_path / "intel-rapl:0" / "name").write_text("package-0\n")
    assert RaplSource.find(tmp_path) is None  # energy_uj missing (as when root-only)


def test_devices_without_a_meter_fall_back_to_the_estimate():
    assert pick_source(torch.device("mps")).method == "estimate"
    if not torch.cuda.is_available():
        assert pick_source(torch.device("cuda")).method == "estimate"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_energy_uses_nvml_when_installed():
    pytest.importorskip("pynvml")
    meter = EnergyMeter("cuda")
    with meter:
        x = torch.randn(2048, 2048, device="cuda")
        for _ in range(50):
            x = x @ x / 2048
    assert meter.result["energy_method"] == "nvml"
    assert meter.result["energy_estimated"] is False
    assert meter.result["energy_j"] > 0
