"""Every docstring example in the package runs and gives what it shows.

Modules are found by walking the package, so a new module's examples are checked without
anyone adding it to a list.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import convbench

MODULES = sorted(info.name for info in pkgutil.walk_packages(convbench.__path__, "convbench.")
                 if not info.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_walk_finds_the_packages_examples():
    assert len(MODULES) > 60
    expected = {"convbench.atomic", "convbench.report.html", "convbench.detection.synth"}
    assert expected <= set(MODULES)
