"""Tiny real data for the detection tests: synthetic pages written as PNG + COCO + PAGE-XML."""

from __future__ import annotations

import pytest
import torch

from convbench.detection.synth import synthesize


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    # The machine has 2 cores shared with other work; more threads only thrash.
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def pages(tmp_path_factory):
    """Six 128-px synthetic pages; returns the COCO annotations path."""
    return synthesize(tmp_path_factory.mktemp("synth") / "pages", pages=6, size=128, seed=3)


@pytest.fixture(scope="session")
def tiny_config():
    """Build a detection config that trains in seconds on the `pages` fixture."""
    return _tiny_config


def _tiny_config(pages_dir, **train) -> dict:
    return {"data": {"source": "synth", "path": str(pages_dir), "synth_pages": 6,
                     "synth_size": 128, "synth_seed": 3, "test_fraction": 0.34},
            "model": {"backbone": "resnet18", "min_size": 96, "max_size": 128,
                      "fpn_channels": 16, "representation_size": 32,
                      "box_batch_per_image": 16, "rpn_pre_nms_train": 200,
                      "rpn_post_nms_train": 50, "rpn_pre_nms_test": 100,
                      "rpn_post_nms_test": 50},
            "train": {"iterations": 2, "batch_size": 2, "warmup_iters": 1, "threads": 2,
                      **train},
            "measure": {"energy": True}}
