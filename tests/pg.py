"""A real, throw-away PostgreSQL server for tests.

The ``postgres_server`` session fixture runs ``initdb`` in a temporary folder, starts the
server on a free loopback port (socket files in that folder too, so nothing touches the
system's PostgreSQL) and stops it at the end.  ``postgres_url`` gives each test an empty
database of its own.  Without PostgreSQL binaries (Debian: ``apt-get install postgresql``)
or psycopg the tests that ask for these fixtures are skipped, with the reason.

Use from a ``conftest.py``: ``from pg import postgres_server, postgres_url``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SUPERUSER = "postgres"
# A role that must give its password (scram-sha-256 in pg_hba.conf; everyone else is
# trusted), so that a wrong password really fails.
PASSWORD_ROLE, PASSWORD = "convbench_pw", "right-pw"
# initdb refuses to run as root; as root we run the server as this system user.
SYSTEM_USER = "postgres"
_PORT_ATTEMPTS = 3


@dataclass
class PostgresServer:
    """A running server: ``url(db)`` gives a SQLAlchemy-style URL for one of its databases."""

    host: str
    port: int
    _names: Iterator[int] = field(default_factory=itertools.count, repr=False)
    _ctl: Callable[..., None] | None = field(default=None, repr=False)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the server comes back on the
        same port with the same data (for tests of clients that must reconnect)."""
        assert self._ctl is not None
        self._ctl("-m", "fast", "-w", "restart")

    def url(self, database: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:<port>/<database>`` (trust auth, no password)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def password_url(self, database: str, password: str) -> str:
        """URL of ``database`` as :data:`PASSWORD_ROLE` with ``password`` (right or wrong);
        the role may create tables in it."""
        self._admin(f'GRANT ALL ON DATABASE "{database}" TO {PASSWORD_ROLE}')
        self._admin(f"GRANT ALL ON SCHEMA public TO {PASSWORD_ROLE}", database)
        return f"postgresql://{PASSWORD_ROLE}:{password}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """Create an empty database with a fresh name and return the name."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing any connection a test left open to it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, sql: str, database: str = "postgres") -> None:
        psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
        # CREATE/DROP DATABASE cannot run inside a transaction: autocommit.
        with psycopg.connect(
            host=self.host, port=self.port, user=SUPERUSER, dbname=database, autocommit=True
        ) as conn:
            conn.execute(sql)


def find_bin_dir() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: newest /usr/lib/postgresql/*/bin, or PATH."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path.parent.name))

    found = [
        d
        for d in Path("/usr/lib/postgresql").glob("*/bin")
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file()
    ]
    if found:
        return max(found, key=version)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """Start a private PostgreSQL cluster, yield it, stop it and delete its files."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    prefix = _user_prefix()
    root = Path(tempfile.mkdtemp(prefix="convbench-pg-"))
    try:
        if prefix:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        data, log = root / "data", root / "server.log"
        initdb = ["-D", data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync"]
        _run(prefix, root, bin_dir / "initdb", *initdb)
        hba = data / "pg_hba.conf"  # first match wins: the password role's line goes first
        hba.write_text(f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
                       + hba.read_text())
        port = _start(prefix, root, bin_dir / "pg_ctl", data, log)
        def ctl(*args: str) -> None:
            _run(prefix, root, bin_dir / "pg_ctl", "-D", data, "-l", log, *args)

        try:
            server = PostgresServer(host="127.0.0.1", port=port, _ctl=ctl)
            server._admin(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
            yield server
        finally:
            _run(prefix, root, bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _user_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pytest.skip(f"running as root and no {SYSTEM_USER!r} user to run PostgreSQL as")
    return ["runuser", "-u", SYSTEM_USER, "--"]


def _start(prefix: list[str], root: Path, pg_ctl: Path, data: Path, log: Path) -> int:
    # The free port can be taken between probing and binding: try a few.
    failure: CommandFailed | None = None
    for _ in range(_PORT_ATTEMPTS):
        port = _free_port()
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
            # Durability is worthless for a throw-away test cluster; speed is not.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            start = ["-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start"]
            _run(prefix, root, pg_ctl, *start)
            return port
        except CommandFailed as exc:
            failure = exc
    server_log = log.read_text(errors="replace") if log.exists() else ""
    pytest.fail(f"PostgreSQL did not start: {failure}\n{server_log[-2000:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CommandFailed(RuntimeError):
    """A PostgreSQL tool exited with an error; the message carries its output."""


def _run(prefix: list[str], cwd: Path, *args: object) -> None:
    command = [*prefix, *map(str, args)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CommandFailed(
            f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr or done.stdout}"
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the whole test session (skips without binaries)."""
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of an empty database of this test's own on the session's server."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
