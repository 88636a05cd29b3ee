"""Compare detectors: :func:`convbench.compare.compare` with detection runs.

Each variant is the base config plus ``--set`` style overrides; all runs join one store
group (kind ``detect-compare``), and the report (:mod:`convbench.report.writers.detection`)
is built from the store alone.

>>> group = compare_detectors("examples/detect-synth.yaml",
...                           [["model.backbone=resnet18"], ["model.backbone=vovnet19-lite"]],
...                           seeds=[0, 1], workers=2, report="out/detect.html")  # doctest: +SKIP
>>> group["report"]["html"]                                                      # doctest: +SKIP
'out/detect.html'
"""

from __future__ import annotations

from typing import Any

from ..compare import compare, variant_label
from ..report.writers.detection import write_detect_report, write_detect_runs_report
from ..results import Group

__all__ = ["compare_detectors", "variant_label", "write_detect_report",
           "write_detect_runs_report"]


def compare_detectors(base: Any, variants: list[str | list[str]], **options: Any) -> Group:
    """:func:`~convbench.compare.compare` of detection runs (``base``: a ``DetectConfig``,
    a dict, a YAML path or None for the defaults); the options are compare's."""
    return compare(base, variants, kind="detect", **options)
