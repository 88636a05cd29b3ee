"""Device, threads, mixed precision and the environment record."""

from __future__ import annotations

import contextlib
import os
import platform
import sys

import torch

from ..errors import ConfigError


def select_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cpu``, ``cuda``, ``cuda:1`` force one.

    >>> select_device("cpu").type
    'cpu'
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"train.device={name!r} is not a device; use auto, cpu or cuda[:N]."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA GPU is visible; use --device cpu or auto.")
    return device


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> int:
    n = threads or available_cores()
    torch.set_num_threads(n)
    return n


def amp_dtype(device: torch.device, enabled: bool | str) -> torch.dtype | None:
    """bf16 on CPUs with native bf16 (AVX512-BF16/AMX) and CUDA GPUs that have it, else fp16 on
    CUDA; None when mixed precision is off or would only slow things down (``enabled`` may be
    a ``train.amp`` value nothing timed: ``auto`` counts as on)."""
    if not static_choice("amp", enabled):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def static_choice(knob: str, value: bool | str) -> bool:
    """What ``train.amp``/``channels_last``/``compile`` mean where nothing timed them
    (training/autotune.py): ``auto`` is amp and channels-last on, compile off.

    >>> static_choice("amp", "auto"), static_choice("compile", "auto"), static_choice("amp", False)
    (True, False, False)
    """
    if value == "auto":
        return knob != "compile"
    return bool(value)


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def environment(device: torch.device, threads: int) -> dict:
    """What a run needs to be reproduced: versions, device, threads, CPU."""
    import torchvision

    from .. import __version__

    try:
        import timm

        timm_version = timm.__version__
    except ImportError:
        timm_version = None
    cuda = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "convbench": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm_version,
        "device": str(device),
        "cuda": cuda,
        "threads": threads,
        "cpu": _cpu_name(),
        "platform": platform.platform(),
    }


def cpuinfo(field: str) -> str | None:
    """The first ``field`` line's value in /proc/cpuinfo (Linux), else None."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_name() -> str:
    return cpuinfo("model name") or platform.processor() or platform.machine()
