"""Shared fixtures: a tiny trained run on the bundled digits (real data, real engine)."""

from __future__ import annotations

import pytest
from transfer_helpers import tiny

from convbench.store import Store
from convbench.training import train


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(store, run) of one completed tiny digits run, shared by the tests of this folder."""
    store = Store(str(tmp_path_factory.mktemp("store") / "runs.db"))
    run = train(tiny(), store=store)
    assert run.status == "completed"
    return store, run
