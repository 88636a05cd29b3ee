"""The examples in the transfer and analysis modules' docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["convbench.models.anatomy", "convbench.models.pretrained",
           "convbench.models.transfer", "convbench.analysis.features",
           "convbench.analysis.per_class", "convbench.analysis.rank",
           "convbench.analysis.svm", "convbench.analysis.tsne", "convbench.analysis.weights",
           "convbench.analysis.plotting", "convbench.data.from_filenames"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
