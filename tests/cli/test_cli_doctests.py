"""The examples in the CLI helpers' docstrings run and give what they show."""

from __future__ import annotations

import doctest

from convbench import cli_common


def test_cli_common_docstring_examples():
    result = doctest.testmod(cli_common)
    assert result.attempted > 0 and result.failed == 0
