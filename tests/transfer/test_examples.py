"""The transfer example configs validate, and their selectors name real parts of the models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convbench import config as cfgmod
from convbench.models import create_model, input_requirements
from convbench.models.anatomy import backbone_units, select

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("transfer-*.yaml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_selectors_resolve(path):
    cfg = cfgmod.load(path)
    side = cfg.data.image_size or 32
    channels, side = input_requirements(cfg.model, side, cfg.data.channels or 3)
    with torch.device("meta"):  # structure only: no weights are loaded or allocated
        net = create_model(cfg.model, 10, channels, side)
    t = cfg.model.transfer
    units = backbone_units(net)
    if t.truncate:
        assert t.truncate < len(units)
    selectors = list(t.reinit) + list(t.lr_scale)
    selectors += t.freeze if isinstance(t.freeze, list) else []
    for selector in selectors:
        assert select(net, selector, units), selector
