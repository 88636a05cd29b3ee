"""Parameters, FLOPs/MACs, disk size, latency and throughput against independent counts."""

from __future__ import annotations

import os
import time

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from convbench.config import MeasureConfig
from convbench.errors import ConfigError
from convbench.measure import (
    count_flops,
    count_parameters,
    inference_latency_ms,
    inference_throughput,
    measure_model,
    weights_size_bytes,
)


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )


class Sleeper(nn.Module):
    """A layer whose forward takes a known wall time, to check the timing loops."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        time.sleep(self.seconds)
        return x * self.scale


def modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_parameters_are_the_sum_of_numel_and_follow_freezing():
    model = small_cnn()
    conv = 8 * 3 * 3 * 3 + 8
    bn = 8 + 8  # weight and bias; running stats are buffers, not parameters
    linear = 512 * 10 + 10
    assert count_parameters(model) == {
        "params_total": conv + bn + linear,
        "params_trainable": conv + bn + linear,
    }
    for p in model[0].parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == {
        "params_total": conv + bn + linear,
        "params_trainable": bn + linear,
    }


def test_tied_parameters_are_counted_once():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    assert count_parameters(nn.Sequential(a, b))["params_total"] == 16 + 4 + 4


def test_flops_equal_the_hand_count_and_macs_are_half():
    model = small_cnn()
    conv = 2 * 3 * 8 * 3 * 3 * 8 * 8  # 2·Cin·Cout·k²·H·W
    linear = 2 * 512 * 10  # 2·in·out
    assert count_flops(model, (3, 8, 8)) == {"flops": conv + linear, "macs": (conv + linear) // 2}


def test_flops_of_strided_depthwise_conv():
    model = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
    # each output channel sees one input channel; 16×16 input → 8×8 output
    assert count_flops(model, (8, 16, 16))["flops"] == 2 * 1 * 8 * 3 * 3 * 8 * 8


def test_elementwise_ops_are_not_counted():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1))
    assert count_flops(model, (3, 8, 8)) == {"flops": 0, "macs": 0}


def test_flops_restore_training_mode_and_leave_no_grad():
    model = small_cnn().train()
    model[1].eval()
    before = modes(model)
    count_flops(model, (3, 8, 8))
    assert modes(model) == before
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("shape", [(3, 8), (3, 0, 8), (3.0, 8, 8)])
def test_malformed_input_shape_is_a_config_error(shape):
    with pytest.raises(ConfigError, match="channels, height, width"):
        count_flops(small_cnn(), shape)


def test_input_the_model_cannot_take_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot run on an input of shape"):
        count_flops(nn.Conv2d(3, 4, 5), (3, 2, 2))
    with pytest.raises(ConfigError, match="cannot run"):
        inference_latency_ms(nn.Conv2d(3, 4, 5), (1, 8, 8), "cpu", repeats=1)


def test_weights_size_is_the_size_of_the_written_safetensors_file(tmp_path):
    model = small_cnn()
    path = tmp_path / "sub" / "weights.safetensors"
    size = weights_size_bytes(model, path)
    assert size == os.path.getsize(path)
    assert sorted(os.listdir(path.parent)) == ["weights.safetensors"]  # no temp file left
    loaded = load_file(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded[name], tensor)
    # the temporary-file variant writes the same bytes
    assert weights_size_bytes(model) == size
    raw = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert raw < size < raw + 4096  # tensors plus a small JSON header


def test_weights_size_handles_tied_and_channels_last_weights(tmp_path):
    a, b = nn.Linear(64, 64), nn.Linear(64, 64)
    b.weight = a.weight
    conv = nn.Conv2d(4, 4, 3).to(memory_format=torch.channels_last)
    size = weights_size_bytes(nn.Sequential(a, b, conv), tmp_path / "w.safetensors")
    assert size == os.path.getsize(tmp_path / "w.safetensors")
    assert size < 2 * 64 * 64 * 4  # the tied matrix is stored once


def test_latency_is_the_median_forward_time_and_modes_are_restored():
    model = nn.Sequential(Sleeper(0.02), nn.BatchNorm2d(1)).train()
    model[1].eval()
    before = modes(model)
    ms = inference_latency_ms(model, (1, 1, 4), "cpu", repeats=5, warmup=1)
    assert 20 <= ms < 60
    assert modes(model) == before


def test_latency_of_a_real_cnn_is_positive():
    assert inference_latency_ms(small_cnn(), (3, 8, 8), "cpu", repeats=3) > 0


def test_throughput_stops_after_max_seconds():
    model = Sleeper(0.3)
    start = time.perf_counter()
    ips = inference_throughput(model, (1, 2, 2), "cpu", batch=8, max_runs=10, max_seconds=0.5)
    took = time.perf_counter() - start
    # one warm-up pass + two timed passes (0.6 s ≥ 0.5 s), not ten
    assert 0.85 < took < 1.5
    assert ips == pytest.approx(8 / 0.3, rel=0.2)


def test_throughput_of_a_real_cnn_is_positive():
    assert inference_throughput(small_cnn(), (3, 8, 8), "cpu", batch=32) > 0


def test_timing_on_a_device_the_model_is_not_on_is_refused():
    with pytest.raises(ValueError, match="move it first"):
        inference_latency_ms(small_cnn(), (3, 8, 8), "meta", repeats=1)


def test_measure_model_combines_every_static_and_speed_figure(tmp_path):
    model = small_cnn()
    cfg = MeasureConfig(latency_repeats=3, throughput_batch=16)
    path = tmp_path / "w.safetensors"
    m = measure_model(model, (3, 8, 8), "cpu", cfg, weights_path=path)
    assert set(m) == {"params_total", "params_trainable", "flops", "macs", "disk_bytes",
                      "latency_ms", "throughput_ips"}
    assert m["params_total"] == count_parameters(model)["params_total"]
    assert (m["flops"], m["macs"]) == (2 * 3 * 8 * 9 * 64 + 2 * 512 * 10, 3 * 8 * 9 * 64 + 512 * 10)
    assert m["disk_bytes"] == os.path.getsize(path)
    assert m["latency_ms"] > 0 and m["throughput_ips"] > 0
