"""What a network costs to hold and to run: parameters, FLOPs/MACs, disk size, latency, throughput.

Every figure is for a single model and names its unit: ``params_total`` (count), ``flops`` and
``macs`` (per image), ``disk_bytes``, ``latency_ms`` (batch 1) and ``throughput_ips`` (images
per second at a large batch).  The model's train/eval state is always restored afterwards, so
these can be called in the middle of training.

>>> import torch.nn as nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
>>> count_parameters(net)
{'params_total': 5354, 'params_trainable': 5354}
>>> count_flops(net, (3, 8, 8))
{'flops': 37888, 'macs': 18944}
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_model
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..atomic import atomic_write
from ..errors import ConfigError

Shape = tuple[int, int, int]


def count_parameters(model: nn.Module) -> dict:
    """Number of parameters, all and those with ``requires_grad`` (buffers are not counted).

    Shared (tied) parameters are counted once.

    >>> count_parameters(nn.Linear(4, 2))
    {'params_total': 10, 'params_trainable': 10}
    """
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {"params_total": total, "params_trainable": trainable}


def count_flops(model: nn.Module, input_shape: Shape) -> dict:
    """FLOPs and MACs of one forward pass on ONE image (batch 1, eval mode, no grad).

    Counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts only the
    heavy ops: convolutions (incl. grouped, depthwise and transposed), ``mm``/``addmm``
    (``nn.Linear``, matmul), ``bmm``/``baddbmm`` and scaled-dot-product / flash / flex
    attention.  It counts 2 FLOPs per multiply-add, so ``macs = flops // 2``.  Element-wise and
    memory ops (activations, batch norm, pooling, bias adds in ``addmm``, softmax, residual
    adds, resizing) are NOT counted; for CNNs they are a few percent of the total.

    >>> count_flops(nn.Sequential(nn.Flatten(), nn.Linear(12, 5)), (3, 2, 2))
    {'flops': 120, 'macs': 60}
    """
    shape = _check_shape(input_shape)
    x = _example_input(model, shape, 1, _model_device(model))
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), torch.no_grad(), _friendly_forward(model, shape), counter:
        model(x)
    flops = int(counter.get_total_flops())
    return {"flops": flops, "macs": flops // 2}


def weights_size_bytes(model: nn.Module, path: Path | None = None) -> int:
    """Size in bytes of the model's weights saved as a safetensors file.

    With ``path`` the file is kept there (written atomically); without, a temporary file is
    used and removed.  Tied tensors are stored once, as safetensors requires.

    >>> weights_size_bytes(nn.Linear(256, 256)) > 256 * 257 * 4
    True
    """
    if path is not None:
        path = atomic_write(path, lambda tmp: save_model(model, tmp, force_contiguous=True))
        return path.stat().st_size
    with tempfile.TemporaryDirectory(prefix="convbench-size-") as folder:
        file = Path(folder) / "model.safetensors"
        save_model(model, str(file), force_contiguous=True)
        return file.stat().st_size


def inference_latency_ms(
    model: nn.Module,
    input_shape: Shape,
    device: str | torch.device,
    repeats: int = 30,
    warmup: int = 3,
) -> float:
    """Median wall time in milliseconds of one forward pass at batch 1.

    Runs under ``torch.inference_mode()`` in eval mode, after ``warmup`` untimed passes; the
    model must already be on ``device``.  Every module's train/eval flag is restored.

    >>> inference_latency_ms(nn.Linear(4, 2), (1, 2, 4), "cpu", repeats=3) > 0
    True
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    shape = _check_shape(input_shape)
    device = _same_device(model, device)
    x = _example_input(model, shape, 1, device)
    times = []
    with _eval_mode(model), torch.inference_mode(), _friendly_forward(model, shape):
        for i in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            model(x)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def inference_throughput(
    model: nn.Module,
    input_shape: Shape,
    device: str | torch.device,
    batch: int = 256,
    max_runs: int = 3,
    max_seconds: float = 2.0,
) -> float:
    """Images per second of forward passes at a large batch, kept short.

    One untimed warm-up pass, then timed passes until ``max_runs`` are done or
    ``max_seconds`` have passed (at least one).  On a CUDA out-of-memory error the batch is
    halved and the measurement retried.

    >>> inference_throughput(nn.Linear(4, 2), (1, 2, 4), "cpu", batch=16) > 0
    True
    """
    if batch < 1 or max_runs < 1 or max_seconds <= 0:
        raise ValueError("need batch >= 1, max_runs >= 1 and max_seconds > 0")
    shape = _check_shape(input_shape)
    device = _same_device(model, device)
    while True:
        try:
            return _throughput_at(model, shape, device, batch, max_runs, max_seconds)
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            # A smaller batch still measures throughput; the caller asked for a figure.
            batch //= 2
            torch.cuda.empty_cache()


def _throughput_at(model, shape, device, batch, max_runs, max_seconds) -> float:
    x = _example_input(model, shape, batch, device)
    images = 0
    elapsed = 0.0
    with _eval_mode(model), torch.inference_mode(), _friendly_forward(model, shape):
        model(x)
        _sync(device)
        for _ in range(max_runs):
            start = time.perf_counter()
            model(x)
            _sync(device)
            elapsed += time.perf_counter() - start
            images += batch
            if elapsed >= max_seconds:
                break
    return images / elapsed


def _check_shape(input_shape) -> Shape:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ConfigError(
            f"Input shape {input_shape!r} is not (channels, height, width) with positive "
            "integers. Pass the shape of one image, e.g. (3, 32, 32)."
        )
    return shape  # type: ignore[return-value]


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _same_device(model: nn.Module, device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    here = _model_device(model)
    if here.type != device.type or (here.index is not None and here.index != device.index):
        raise ValueError(f"model is on {here} but timing was asked on {device}; move it first")
    return device


def _example_input(model: nn.Module, shape: Shape, batch: int, device) -> torch.Tensor:
    # Match the weights' float dtype so half/bf16 models are timed as they would run.
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return torch.randn(batch, *shape, device=device, dtype=dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    # Per-module flags, not just model.training: fine-tuning often keeps some BN layers in
    # eval inside a model in train mode, and that must survive a measurement.
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


@contextlib.contextmanager
def _friendly_forward(model: nn.Module, shape: Shape) -> Iterator[None]:
    # A shape the network cannot take (too small for its pooling, wrong channel count) is a
    # configuration mistake, so it becomes a ConfigError instead of a deep torch traceback.
    try:
        yield
    except (RuntimeError, ValueError) as err:
        if isinstance(err, torch.cuda.OutOfMemoryError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"{type(model).__name__} cannot run on an input of shape {shape}: {first}. "
            "Check data.image_size / data.channels against the model's requirements."
        ) from err
