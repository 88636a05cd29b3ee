"""Atomic checkpoints: write to a temporary file in the same folder, fsync, then rename, so a
kill at any moment leaves either the old or the new file, never half of one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..atomic import atomic_write
from ..errors import WeightsError


class CheckpointRefused(WeightsError):
    """A checkpoint a resume cannot use (unreadable, or not of the run's config): the run is
    left as it was, not recorded as failed (:func:`~.lifecycle.recorded_run`)."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save training state (tensors, numbers, strings, lists, dicts only)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without running pickled code (the caller checks that it exists: a run
    killed before its first checkpoint has none, and starts over)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign file: say so instead of a traceback
        raise CheckpointRefused(
            f"Checkpoint {str(path)!r} is unreadable ({err.__class__.__name__})."
        ) from None


def save_weights(path: str | Path, model: torch.nn.Module) -> None:
    """Model weights as safetensors (shared tensors cloned: safetensors forbids aliasing)."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))
