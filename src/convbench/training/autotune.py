"""``train.amp``, ``train.channels_last`` and ``train.compile`` = ``auto``: chosen by timing a
few training steps of each combination on this machine, not by assumption.

Which precision and memory layout are fastest depends on the CPU (native bf16 or not), the
model, the input size and the batch; ``torch.compile`` pays minutes of compilation on a CPU
before it saves anything. So, before a run trains, :func:`autotune`

1. leaves a run of fewer than :data:`MIN_STEPS` steps alone (timing would cost more than it
   could save): ``auto`` then means what it always meant — bf16 where the CPU has native bf16
   (or on a CUDA GPU), channels-last on, no compilation;
2. otherwise times every combination of the ``auto`` knobs through the real training loop
   (:func:`~.steptime.time_steps`) and takes the fastest one whose loss stays finite; the
   static choice wins unless another is at least :data:`MARGIN` faster, so that noise does not
   flip the choice;
3. compiles only when the run's estimated training time is long enough to repay it: not below
   :data:`COMPILE_WORTH_S`; above, compilation is timed and chosen only if compiling plus the
   compiled steps beats the eager steps.

The choice is cached per machine (torch version, CPU flags and torch's CPU capability, device,
threads, model, input and batch) in ``~/.cache/convbench/autotune.json``, under a file lock,
so it is made once and every later run of the same shape on this machine makes the same one.
The run stores the resolved values in its config (so ``--resume`` and evaluation use them) and
what was timed, and why, in its metrics (``autotune``) and train.log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .. import config as cfgmod
from ..atomic import file_lock, write_text
from ..config import RunConfig
from ..data.bundle import DataBundle
from ..data.sources import cache_root
from .classification import batches_per_epoch
from .device import amp_dtype, available_cores, cpuinfo, select_device, static_choice
from .steptime import time_steps

KNOBS = ("amp", "channels_last", "compile")
MIN_STEPS = 200  # a shorter run trains in about the time its timing would take
MARGIN = 0.05  # another combination must be this much faster than the static choice
COMPILE_WORTH_S = 600.0  # below this much estimated training, compiling cannot repay itself
WARMUP, STEPS, PASSES = 2, 5, 2


def autotune(cfg: RunConfig, bundle: DataBundle) -> tuple[RunConfig, dict[str, Any] | None]:
    """The config with every ``auto`` knob resolved to true/false, and a record of the choice
    (None when nothing was ``auto``)."""
    t = cfg.train
    auto = [k for k in KNOBS if getattr(t, k) == "auto"]
    if not auto:
        return cfg, None
    steps = batches_per_epoch(len(bundle.train), t.batch_size) * t.epochs
    static = {k: static_choice(k, getattr(t, k)) for k in KNOBS}
    if steps < MIN_STEPS:
        info = {"chosen": {k: static[k] for k in auto}, "cached": False,
                "why": f"{steps} training steps: too few to be worth timing; the static "
                       "choice (bf16 where native, channels-last, no compilation)"}
    else:
        key = _key(cfg, bundle)
        with _cache() as cache:
            info = cache.get(key)
            if info is None or set(info["chosen"]) != set(auto):
                info = _measure(cfg, bundle, auto, static, steps)
                cache[key] = info
            else:
                info = info | {"cached": True}
        info = _compile_decision(cfg, bundle, info, steps) if "compile" in auto else info
    resolved = cfgmod.replace(cfg, {f"train.{k}": v for k, v in info["chosen"].items()},
                              source="train.*=auto")
    return resolved, info


def describe(info: dict[str, Any]) -> str:
    """One train.log line for the record :func:`autotune` returned."""
    chosen = ", ".join(f"{k}={v}" for k, v in info["chosen"].items())
    timed = "; ".join(f"{name} {ms:.1f} ms/step" for name, ms in (info.get("ms") or {}).items())
    cached = " (cached for this machine)" if info.get("cached") else ""
    return f"auto: {chosen}{cached}: {info['why']}" + (f" [{timed}]" if timed else "")


# ----- timing ---------------------------------------------------------------------------------

def _measure(cfg: RunConfig, bundle: DataBundle, auto: list[str], static: dict[str, bool],
             steps: int) -> dict[str, Any]:
    """Time every combination of the ``auto`` layout/precision knobs (compile is decided
    apart); interleaved passes, so a burst of other work hits them all alike."""
    device = select_device(cfg.train.device)
    # Where mixed precision does not exist (no native bf16: AVX2-only CPUs), amp would
    # run in fp32 anyway: record that as amp off, not as a choice that was never made.
    native = amp_dtype(device, True) is not None
    amps = [True, False] if "amp" in auto and native else [static["amp"] and native]
    layouts = [True, False] if "channels_last" in auto else [static["channels_last"]]
    combos = [(a, c) for a in amps for c in layouts]
    times: dict[tuple[bool, bool], list[float]] = {c: [] for c in combos}
    broken: set[tuple[bool, bool]] = set()
    for _ in range(PASSES):
        for amp, layout in combos:
            if (amp, layout) in broken:
                continue
            trial = cfgmod.replace(cfg, {"train.amp": amp, "train.channels_last": layout,
                                         "train.compile": False}, source="train.*=auto")
            gaps, _ = time_steps(trial, bundle, warmup=WARMUP, steps=STEPS)
            if not gaps or not all(math.isfinite(g) for g in gaps):
                broken.add((amp, layout))
                continue
            times[(amp, layout)].append(statistics.median(gaps))
    best_of = {c: min(v) for c, v in times.items() if v and c not in broken}
    base = (static["amp"], static["channels_last"])
    pick = base if base in best_of else min(best_of, key=best_of.get)
    fastest = min(best_of, key=best_of.get)
    if best_of[fastest] < best_of.get(pick, math.inf) * (1 - MARGIN):
        pick = fastest
    chosen = {"amp": pick[0], "channels_last": pick[1]}
    ms = {_name(c): 1000 * s for c, s in sorted(best_of.items(), key=lambda kv: kv[1])}
    why = (f"the fastest of {len(best_of)} timed combinations" if pick == fastest else
           f"kept {_name(base)}: the fastest, {_name(fastest)}, was less than {MARGIN:.0%} "
           "faster")
    return {"chosen": {k: chosen[k] for k in auto if k in chosen} | (
                {"compile": False} if "compile" in auto else {}),
            "ms": ms, "step_s": best_of[pick], "why": why, "cached": False}


def _compile_decision(cfg: RunConfig, bundle: DataBundle, info: dict[str, Any],
                      steps: int) -> dict[str, Any]:
    """Compile only if compiling plus the compiled steps beats the eager steps."""
    step_s = info.get("step_s")
    if step_s is None:  # too short to time: no compilation either
        return info
    eager_s = steps * step_s
    if eager_s < COMPILE_WORTH_S:
        return info | {"why": info["why"] + f"; compile off: ~{eager_s:.0f} s of training is "
                       f"too short to repay compiling (minutes on a CPU)"}
    chosen = dict(info["chosen"])
    trial = cfgmod.replace(cfg, {f"train.{k}": v for k, v in chosen.items()}
                           | {"train.compile": True}, source="train.compile=auto")
    gaps, first_s = time_steps(trial, bundle, warmup=WARMUP, steps=STEPS)
    compiled_s = first_s + steps * statistics.median(gaps) if gaps else math.inf
    chosen["compile"] = compiled_s < eager_s
    verdict = "on" if chosen["compile"] else "off"
    return info | {"chosen": chosen, "why": info["why"] + (
        f"; compile {verdict}: {first_s:.0f} s to compile, then ~{compiled_s:.0f} s against "
        f"~{eager_s:.0f} s eager")}


def _name(combo: tuple[bool, bool]) -> str:
    amp, layout = combo
    return f"{'amp' if amp else 'fp32'}+{'channels_last' if layout else 'contiguous'}"


# ----- the per-machine cache ---------------------------------------------------------------

def _key(cfg: RunConfig, bundle: DataBundle) -> str:
    """What decides the fastest combination: the machine, the model, input and batch."""
    device = select_device(cfg.train.device)
    parts = {
        "torch": torch.__version__,
        "cpu": _cpu_flags(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": cfg.train.threads or available_cores(),
        "model": cfg.model.model_dump(mode="json"),
        "input": [bundle.channels, *bundle.image_size],
        "classes": bundle.num_classes,
        "batch": cfg.train.batch_size,
        "augment": cfg.data.augment.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _cpu_flags() -> str:
    flags = cpuinfo("flags")
    return hashlib.sha256(flags.encode()).hexdigest()[:16] if flags else "unknown"


def cache_path() -> Path:
    return cache_root() / "autotune.json"


@contextlib.contextmanager
def _cache() -> Iterator[dict[str, Any]]:
    """The cache, held under an exclusive lock: two runs starting at once time once, and
    both use that one choice."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_suffix(".lock")):
        try:
            cache = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, json.JSONDecodeError):
            cache = {}  # a damaged cache only costs a new timing
        before = json.dumps(cache, sort_keys=True)
        yield cache
        if json.dumps(cache, sort_keys=True) != before:
            write_text(path, json.dumps(cache, indent=1, sort_keys=True))
