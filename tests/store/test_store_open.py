"""Opening a store: where it lives, how SQLite is set up, and clear errors for bad URLs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from convbench.store import Store, StoreError


def test_default_location_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVBENCH_STORE", raising=False)
    with Store() as store:
        store.create_run(name=None, config={}, seed=0, env={})
    db = tmp_path / "convbench-runs" / "runs.db"
    assert db.is_file()
    assert store.url == f"sqlite:///{db}"
    assert store.artifacts_root == tmp_path / "convbench-runs" / "runs-artifacts"


def test_environment_variable_chooses_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVBENCH_STORE", str(tmp_path / "elsewhere" / "mine.db"))
    with Store() as store:
        run_id = store.create_run(name=None, config={}, seed=0, env={})
    assert (tmp_path / "elsewhere" / "mine.db").is_file()
    assert not (tmp_path / "convbench-runs").exists()
    with Store(str(tmp_path / "elsewhere" / "mine.db")) as same:
        assert same.resolve_id(run_id) == run_id


def test_path_and_sqlite_url_name_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Store("nested/dir/runs.db") as by_path:
        run_id = by_path.create_run(name="x", config={}, seed=1, env={})
        assert by_path.artifacts_root == tmp_path / "nested" / "dir" / "runs-artifacts"
    with Store(f"sqlite:///{tmp_path}/nested/dir/runs.db") as by_url:
        assert by_url.get_run(run_id)["name"] == "x"
    monkeypatch.chdir(tmp_path / "nested")
    with Store("sqlite:///dir/runs.db") as relative:  # relative to the working directory
        assert relative.get_run(run_id)["seed"] == 1
        assert relative.url == f"sqlite:///{tmp_path}/nested/dir/runs.db"


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    with Store(str(tmp_path / "runs.db")) as store:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30_000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        tables = set(sa.inspect(store.engine).get_table_names())
    assert {"runs", "epochs", "groups"} <= tables


def test_opening_twice_keeps_the_schema_and_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "runs.db")
    with Store(path) as first:
        run_id = first.create_run(name=None, config={}, seed=0, env={})
    with Store(path) as second:
        assert [r["id"] for r in second.list_runs()] == [run_id]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://user@localhost/runs", "Unsupported run store URL"),
        ("not a url://x", "Cannot parse run store URL"),
        ("sqlite://", "In-memory SQLite"),
        ("sqlite:///:memory:", "In-memory SQLite"),
    ],
)
def test_unusable_urls_are_store_errors(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        Store(url)
    assert "postgresql://" in str(info.value)  # says what would work


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the runs you are looking for\n" * 50)
    with pytest.raises(StoreError, match="Cannot open run store .*notes.txt.*not a database"):
        Store(str(path))


def test_a_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="Cannot create folder .*file.*permissions"):
        Store(str(blocker / "runs.db"))


def test_unreachable_postgresql_server(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://someone:s3cret@127.0.0.1:{port}/runs"
    with pytest.raises(StoreError) as info:
        Store(url)
    text = str(info.value)
    assert f"127.0.0.1:{port}/runs" in text and "server is running" in text
    assert "s3cret" not in text


@pytest.mark.postgres
def test_postgresql_url_uses_psycopg_and_artifacts_setting(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVBENCH_ARTIFACTS", raising=False)
    with Store(postgres_url) as store:
        assert store.url.startswith("postgresql+psycopg://")
        assert store.engine.dialect.driver == "psycopg"
        assert store.artifacts_root == tmp_path / "convbench-runs" / "artifacts"
        run_id = store.create_run(name=None, config={}, seed=0, env={})
    monkeypatch.setenv("CONVBENCH_ARTIFACTS", str(tmp_path / "shared"))
    with Store(postgres_url.replace("postgresql://", "postgresql+psycopg://")) as again:
        assert again.artifacts_root == tmp_path / "shared"
        assert again.run_dir(run_id) == tmp_path / "shared" / run_id


@pytest.mark.postgres
def test_missing_postgresql_database(postgres_server) -> None:
    url = postgres_server.url("no_such_database")
    with pytest.raises(StoreError, match="no_such_database.*database name"):
        Store(url)


def _version(store: Store) -> str | None:
    from convbench.store.schema import info

    with store.engine.connect() as conn:
        return conn.execute(sa.select(info.c.value)).scalar_one_or_none()


def test_the_schema_version_is_recorded_and_a_newer_store_is_refused(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convbench.store.schema import SCHEMA_VERSION, info

    monkeypatch.setenv("CONVBENCH_ARTIFACTS", str(tmp_path / "pg-artifacts"))
    with Store(store_url) as store:
        run_id = store.create_run(name=None, config={}, seed=0, env={})
        assert _version(store) == str(SCHEMA_VERSION)
        with store.engine.begin() as conn:
            conn.execute(sa.update(info).values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(StoreError, match="newer convbench") as refused:
        Store(store_url)
    assert "Upgrade convbench" in str(refused.value)
    # Refusing wrote nothing: with the version put back the run is still there.
    from convbench.store import database as db

    engine = db.make_engine(db.resolve_url(store_url))
    with engine.begin() as conn:
        conn.execute(sa.update(info).values(value=str(SCHEMA_VERSION)))
    engine.dispose()
    with Store(store_url) as store:
        assert [r["id"] for r in store.list_runs()] == [run_id]


def test_a_store_from_before_versions_gets_version_1(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(str(path)) as store:
        run_id = store.create_run(name=None, config={}, seed=0, env={})
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE convbench_info")
    with Store(str(path)) as store:
        assert _version(store) == "1"
        assert [r["id"] for r in store.list_runs()] == [run_id]
