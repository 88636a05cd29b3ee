"""Helpers shared by the transfer tests (a module, so tests can import it)."""

from __future__ import annotations

# Tiny but real: 8×8 digits, a 2-block net with BatchNorm, one epoch, no cost probes.
TINY = {"data": {"dataset": "digits", "train_limit": 600},
        "model": {"name": "B2FL4", "batch_norm": True},
        "train": {"epochs": 1, "batch_size": 32, "threads": 1},
        "measure": {"cost": False}}


def tiny(**sections) -> dict:
    """TINY with some sections' fields replaced (one level deep)."""
    out = {k: dict(v) for k, v in TINY.items()}
    for key, fields in sections.items():
        out.setdefault(key, {}).update(fields)
    return out
