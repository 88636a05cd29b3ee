"""Where the run store lives and how to talk to it: URL rules, engine set-up, lock handling.

SQLite serves one machine: several processes (search workers, the dashboard) write to the
same file at once.  That works because every connection uses WAL journaling (readers never
block the writer) and a 30 s busy timeout (a writer waits for the lock instead of failing),
and because write transactions start with ``BEGIN IMMEDIATE``: a deferred transaction that
reads and then writes cannot wait for the lock in WAL mode, it fails at once with "database
is locked".  PostgreSQL serves several machines.
"""

from __future__ import annotations

import functools
import json
import os
import weakref
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from convbench.errors import StoreError

ENV_STORE = "CONVBENCH_STORE"
ENV_ARTIFACTS = "CONVBENCH_ARTIFACTS"
DEFAULT_SQLITE_PATH = Path("convbench-runs") / "runs.db"
DEFAULT_ARTIFACTS = Path("convbench-runs") / "artifacts"
BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
# A client stopped or cut off in the middle of a transaction keeps its row locks until the
# server ends its session: every other worker that updates the same row (the search's status
# line, a trial) would wait for it forever. The server ends such a session after this many
# seconds idle inside a transaction (no transaction of convbench's waits on its client that
# long), and probes an idle connection's peer so a vanished machine's session (and the
# advisory locks it holds) ends too. The variable shortens it for tests and drills.
PG_IDLE_IN_TRANSACTION_S = int(os.environ.get("CONVBENCH_PG_IDLE_TX_S") or 20)

# Execution option a Connection carries when its next transaction will write (see module doc).
WRITE_OPTION = "convbench_write"

_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "deadlock detected",
    "could not serialize access",
)

# A PostgreSQL server that restarts or a network that drops: worth waiting for once the store
# was opened (at the first connection the same errors mean a wrong host or port).
_DISCONNECT = (
    "server closed the connection",
    "terminating connection",
    "connection refused",
    "could not connect",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection is closed",
    "consuming input failed",
    "no connection to the server",
    "connection timeout expired",
)

USAGE = "use a file path, sqlite:///path/to/runs.db or postgresql://user:password@host/dbname"


def resolve_url(url: str | None) -> sa.URL:
    """The SQLAlchemy URL of a store given as a path or URL (``None``: env or default).

    Plain paths and ``sqlite:///`` URLs are made absolute so that the store stays the same
    after a change of directory; ``postgresql://`` gets the psycopg 3 driver.

    >>> resolve_url("postgresql://me@db.example/runs").drivername
    'postgresql+psycopg'
    """
    raw = url if url is not None else (os.environ.get(ENV_STORE) or str(DEFAULT_SQLITE_PATH))
    if "://" not in raw:
        return sa.URL.create("sqlite", database=str(Path(raw).expanduser().absolute()))
    try:
        parsed = sa.make_url(raw)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"Cannot parse run store URL {raw!r}: {USAGE}.") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise StoreError(
                f"In-memory SQLite ({raw!r}) cannot hold a run store: results would vanish "
                f"when the process ends. {USAGE[0].upper()}{USAGE[1:]}."
            )
        return parsed.set(database=str(Path(database).expanduser().absolute()))
    if backend in ("postgresql", "postgres"):
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    raise StoreError(f"Unsupported run store URL {safe_url(parsed)!r}: {USAGE}.")


def safe_url(url: sa.URL) -> str:
    """The URL as text with any password masked, for messages."""
    return url.render_as_string(hide_password=True)


def is_sqlite(url: sa.URL) -> bool:
    """Whether the store is a SQLite file."""
    return url.get_backend_name() == "sqlite"


def artifacts_location(url: sa.URL) -> str:
    """Where the runs' files go when no ``--artifacts`` is given: a folder, or an fsspec URL
    (see :mod:`convbench.store.artifacts`).

    SQLite: ``<db stem>-artifacts/`` beside the database file, so each database keeps its
    own files.  PostgreSQL: ``$CONVBENCH_ARTIFACTS`` or ``./convbench-runs/artifacts``.

    >>> artifacts_location(resolve_url("/data/runs.db"))
    '/data/runs-artifacts'
    """
    if is_sqlite(url):
        db = Path(url.database or "")
        return str(db.parent / f"{db.stem}-artifacts")
    env = os.environ.get(ENV_ARTIFACTS)
    if env and "://" in env:
        return env
    return str(Path(env or DEFAULT_ARTIFACTS).expanduser().absolute())


def make_engine(url: sa.URL) -> sa.Engine:
    """An engine for ``url`` with the settings described in the module docstring."""
    # allow_nan=False: a NaN that slipped past to_json fails loudly on every backend alike.
    serializer = functools.partial(json.dumps, allow_nan=False)
    if is_sqlite(url):
        engine = sa.create_engine(
            url, json_serializer=serializer, connect_args={"check_same_thread": False}
        )
        _configure_sqlite(engine)
    else:
        try:
            engine = sa.create_engine(
                url, json_serializer=serializer, pool_pre_ping=True,
                connect_args=pg_connect_args(url),
            )
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise StoreError(
                f"Cannot use {safe_url(url)!r}: its database driver is not installed "
                f"({exc}). For PostgreSQL run `pip install 'convbench[postgres]'`."
            ) from exc
    _guard_fork(engine)
    return engine


def pg_connect_args(url: sa.URL) -> dict:
    """The psycopg connection arguments of every PostgreSQL connection convbench opens (the
    store's and Optuna's): a connect timeout, and the server-side limits described at
    :data:`PG_IDLE_IN_TRANSACTION_S` (what the URL sets itself is kept).

    >>> pg_connect_args(resolve_url("postgresql://me@db/runs"))["connect_timeout"]
    10
    """
    args: dict = {}
    if "connect_timeout" not in url.query:
        args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    if "options" not in url.query:
        args["options"] = (
            f"-c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_S * 1000} "
            "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
        )
    return args


def is_transient(exc: sa.exc.DBAPIError) -> bool:
    """Whether ``exc`` is lock contention that a retry of the transaction can get past."""
    text = str(exc.orig).lower()
    return any(marker in text for marker in _TRANSIENT)


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from, as Optuna wraps them) is a lost or
    refused connection to the database server."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa.exc.DBAPIError) and seen.connection_invalidated:
            return True
        text = str(getattr(seen, "orig", None) or seen).lower()
        if any(marker in text for marker in _DISCONNECT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Autocommit at the driver level: SQLAlchemy's "begin" hook below issues BEGIN
        # itself, so that it can choose BEGIN IMMEDIATE for writes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL itself may have to wait for a lock.
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # NORMAL is safe with WAL: a crash may drop the last commits, never corrupt.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _guard_fork(engine: sa.Engine) -> None:
    """Give a forked child a fresh connection pool (SQLAlchemy's advice for os.fork()).

    A connection inherited through fork() shares its socket or file with the parent; using
    it from both sides corrupts the session (even the pool's pre-ping would).  The child drops
    the inherited connections without closing them, so the parent's stay intact, and opens
    its own.  A weak reference keeps this hook from holding closed stores alive.
    """
    ref = weakref.ref(engine)

    def _after_fork_in_child() -> None:
        inherited = ref()
        if inherited is not None:
            inherited.dispose(close=False)

    os.register_at_fork(after_in_child=_after_fork_in_child)
