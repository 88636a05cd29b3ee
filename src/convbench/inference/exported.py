"""What an export is: the files written, their metadata and the check against PyTorch;
shared by the classification and detection exporters.

>>> Check(images=256, max_abs_diff=4e-6, top1_agreement=1.0).top1_agree
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConvbenchError

META_KEY = "convbench"


class ExportError(ConvbenchError):
    """A run that cannot be written in the asked format, or a missing export package."""


@dataclass
class Check:
    """The export against the PyTorch network on ``images`` real test images (or pages):
    the largest difference of ``measure`` and the share whose top-1 (detections' labels)
    agree."""

    images: int
    max_abs_diff: float
    top1_agreement: float
    measure: str = "logit"
    unit: str = "test images"

    @property
    def top1_agree(self) -> bool:
        return self.top1_agreement == 1.0


@dataclass
class Exported:
    path: Path
    meta_path: Path
    card_path: Path
    meta: dict
    check: Check | None


