"""What a CNN costs and how good it is: parameters, FLOPs/MACs, disk size, latency,
throughput, peak memory, energy and cost, classification metrics.

See docs/measuring.md for what each figure means and how it is obtained.

>>> import torch.nn as nn
>>> from convbench.config import MeasureConfig
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
>>> m = measure_model(net, (1, 8, 8), "cpu", MeasureConfig(latency_repeats=3, throughput_batch=8))
>>> m["params_total"], m["flops"], m["macs"]
(1490, 5472, 2736)
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import MeasureConfig
from .classification import classification_metrics
from .efficiency import (
    count_flops,
    count_parameters,
    inference_latency_ms,
    inference_throughput,
    weights_size_bytes,
)
from .energy import EnergyMeter
from .memory import PeakMemory

__all__ = [
    "EnergyMeter",
    "PeakMemory",
    "classification_metrics",
    "count_flops",
    "count_parameters",
    "inference_latency_ms",
    "inference_throughput",
    "measure_model",
    "weights_size_bytes",
]


def measure_model(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    device: str | torch.device,
    cfg: MeasureConfig,
    weights_path: Path | None = None,
    timed: bool = True,
) -> dict:
    """Static and speed costs of a model already on ``device``, for one input of ``input_shape``.

    Keys: ``params_total``, ``params_trainable``, ``flops``, ``macs`` (per image),
    ``disk_bytes`` (safetensors file, kept at ``weights_path`` when given), ``latency_ms``
    (median at batch 1 over ``cfg.latency_repeats``) and ``throughput_ips`` (images/s at
    ``cfg.throughput_batch``). ``timed=False`` skips those two probes, the only slow part.

    >>> sorted(measure_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), (1, 2, 2), "cpu",
    ...                      MeasureConfig(latency_repeats=1, throughput_batch=2)))[:3]
    ['disk_bytes', 'flops', 'latency_ms']
    """
    static = {
        **count_parameters(model),
        **count_flops(model, input_shape),
        "disk_bytes": weights_size_bytes(model, weights_path),
    }
    if not timed:
        return static
    return static | {
        "latency_ms": inference_latency_ms(model, input_shape, device, cfg.latency_repeats),
        "throughput_ips": inference_throughput(model, input_shape, device, cfg.throughput_batch),
    }
