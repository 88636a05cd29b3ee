"""Fixtures for the store tests: every test that takes ``store_url`` or ``store`` runs twice,
once on a SQLite file and once on a real PostgreSQL server (skipped without its binaries)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from convbench.store import Store

# tests/ holds helpers shared by several test folders (pg.py); pytest puts only this folder
# on sys.path, so add its parent.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from pg import postgres_server, postgres_url  # noqa: E402, F401


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty store: a SQLite file path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """An open :class:`Store` on ``store_url``; PostgreSQL artifacts go under ``tmp_path``."""
    monkeypatch.setenv("CONVBENCH_ARTIFACTS", str(tmp_path / "pg-artifacts"))
    opened = Store(store_url)
    yield opened
    opened.close()
