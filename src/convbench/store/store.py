"""The :class:`Store`: runs, their epochs and groups of runs, in SQLite or PostgreSQL.

Every public method is one short database transaction, so the store never holds a
half-written run and several processes can write to it at once.  Values are made JSON-safe
on the way in (see :mod:`convbench.store.jsonsafe`: NaN and infinities become ``None``).
"""

from __future__ import annotations

import random
import re
import shutil
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from convbench.atomic import file_lock
from convbench.errors import StoreError
from convbench.store import database as db
from convbench.store.artifacts import Artifacts
from convbench.store.jsonsafe import merge, to_json
from convbench.store.queries import (
    activity_query,
    epoch_counts_query,
    status_counts_query,
    summary_query,
)
from convbench.store.schema import SCHEMA_VERSION, epochs, groups, info, metadata, runs

RUN_STATUSES = ("running", "completed", "failed", "diverged", "stopped")
GROUP_STATUSES = ("running", "completed", "failed", "stopped")
LISTING = "convbench runs list"

# Lock errors that outlast the 30 s busy timeout are rare; retry the whole transaction with
# growing, jittered pauses (about half a minute in all) before giving up.
_ATTEMPTS = 10
# Key of the PostgreSQL advisory lock that lets only one process create the tables at a time.
_SCHEMA_LOCK_KEY = 0x636F6E76
# 8 hex characters = 32 random bits: a clash is rare enough to simply draw again.
_ID_ATTEMPTS = 5
_SAFE_ID = re.compile(r"[0-9A-Za-z_-]{1,32}")

T = TypeVar("T")


def _now() -> str:
    # Fixed microsecond precision keeps the text sortable in time order.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _new_id() -> str:
    return uuid.uuid4().hex[:8]


def _check_status(status: str, allowed: tuple[str, ...], what: str) -> None:
    if status not in allowed:
        raise StoreError(f"Unknown {what} status {status!r}; expected one of {', '.join(allowed)}.")


def _upsert(dialect: str):
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class Store:
    """A run store at ``url``: a file path, ``sqlite:///…`` or ``postgresql://…``.

    ``None`` means ``$CONVBENCH_STORE`` or, without it, ``./convbench-runs/runs.db``.  The
    tables are created on first use.  ``engine`` is public so that other tools (Optuna) can
    share the database.

    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp() + "/runs.db")
    >>> run_id = store.create_run(name="demo", config={"lr": 0.1}, seed=0, env={})
    >>> store.add_epoch(run_id, 1, {"val_acc": 0.5})
    >>> store.get_run(run_id)["epochs"]
    [{'epoch': 1, 'val_acc': 0.5}]
    """

    def __init__(self, url: str | None = None, artifacts: str | Path | None = None) -> None:
        self._url = db.resolve_url(url)
        self.url: str = self._url.render_as_string(hide_password=False)
        # ``artifacts``: a folder every worker reaches (NFS…) or an fsspec URL (s3://…) for
        # checkpoints and weights; runs write in ``artifacts_root`` (for a URL, a local cache).
        self.artifacts = Artifacts(artifacts or db.artifacts_location(self._url))
        self.artifacts_root: Path = self.artifacts.local
        if self.is_sqlite:
            folder = Path(self._url.database or "").parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"Cannot create folder {str(folder)!r} for the run store: {exc.strerror}. "
                    "Check the path and its permissions."
                ) from exc
        self.engine: sa.Engine = db.make_engine(self._url)
        try:
            if self._transact(self._schema_missing, write=False, action="open"):
                self._transact(self._create_schema, action="open")
            version = self._transact(self._schema_version, write=False, action="open")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"Run store {db.safe_url(self._url)!r} was written by a newer convbench "
                    f"(schema {version}; this one reads {SCHEMA_VERSION}). Upgrade convbench "
                    "to use it."
                )
        except StoreError:
            self.engine.dispose()
            raise

    @property
    def is_sqlite(self) -> bool:
        """A SQLite file (one machine), not a server every worker reaches."""
        return db.is_sqlite(self._url)

    def __repr__(self) -> str:
        return f"Store({db.safe_url(self._url)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled database connections (the store can still be used later)."""
        self.engine.dispose()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold a lock named ``name`` shared by every process of every machine using this
        store, for work that must not run twice at once (a search's next phase is queued by
        whichever worker gets there first). PostgreSQL: a session advisory lock on a
        connection of its own; SQLite (one machine): an ``flock`` on a file beside the
        database, since a write transaction held open would block the work inside.

        Example: ``with store.exclusive(f"search-{gid}"): ...``.
        """
        if self.is_sqlite:
            db_file = Path(self._url.database or "")
            with file_lock(db_file.with_name(f".{db_file.name}.{name}.lock")):
                yield
            return
        key = zlib.crc32(name.encode()) - 2**31  # advisory locks take a signed 64-bit key
        with self.engine.connect() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_lock(key)))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                conn.commit()

    def check_artifacts(self) -> None:
        """Make sure the artifacts folder can be written (create it, write and delete a small
        file), so a worker with an unmounted or full shared folder says so before it claims
        any work.

        Example: ``Store(url, artifacts="/mnt/shared/convbench").check_artifacts()``.
        """
        self.artifacts.check()

    # ------------------------------------------------------------------ runs

    def run_dir(self, run_id: str) -> Path:
        """The artifacts folder of ``run_id`` (checkpoints, plots), created if missing.

        Example: ``torch.save(state, store.run_dir(run_id) / "last.pt")``.
        """
        path = self._artifacts_path(run_id)
        if not path.exists():  # artifacts at a URL: the run trained on another machine
            self.artifacts.fetch(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def create_run(
        self,
        *,
        name: str | None,
        config: dict,
        seed: int,
        env: dict,
        kind: str = "train",
        device: str | None = None,
        group_id: str | None = None,
    ) -> str:
        """Record a new run with status ``"running"`` and return its 8-hex-digit id.

        Example: ``store.create_run(name="b2fl32", config=cfg, seed=0, env=env)`` gives
        ``'3f9c01ab'``.
        """
        row = {
            "name": name,
            "kind": kind,
            "status": "running",
            "group_id": group_id,
            "config": to_json(config, "config"),
            "seed": int(seed),
            "env": to_json(env, "env"),
            "device": device,
            "started_at": _now(),
            "ended_at": None,
            "metrics": {},
            "artifacts": {},
        }

        def check(conn: sa.Connection) -> None:
            if group_id is not None:
                self._require_group(conn, group_id)

        return self._insert_with_new_id(runs, row, check)

    def add_epoch(self, run_id: str, epoch: int, metrics: dict) -> None:
        """Store the metrics of one epoch; writing the same epoch again replaces them.

        Example: ``store.add_epoch(run_id, 3, {"train_loss": 0.41, "val_acc": 0.87})``.
        """
        values = {"run_id": run_id, "epoch": int(epoch), "metrics": to_json(metrics, "metrics")}

        def work(conn: sa.Connection) -> None:
            self._require_run(conn, run_id)
            insert = _upsert(conn.dialect.name)(epochs).values(**values)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[epochs.c.run_id, epochs.c.epoch],
                    set_={"metrics": insert.excluded.metrics},
                )
            )

        self._transact(work)

    def truncate_epochs(self, run_id: str, after: int) -> None:
        """Delete the epochs numbered above ``after`` (a resumed run redoes them).

        Example: ``store.truncate_epochs(run_id, after=5)``.
        """

        def work(conn: sa.Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(
                sa.delete(epochs).where(epochs.c.run_id == run_id, epochs.c.epoch > int(after))
            )

        self._transact(work)

    def set_status(self, run_id: str, status: str) -> None:
        """Set the status: running, completed, failed, diverged or stopped.

        Example: ``store.set_status(run_id, "diverged")``.
        """
        self.update(run_id, status=status)

    def update(
        self,
        run_id: str,
        *,
        metrics: dict | None = None,
        artifacts: dict | None = None,
        status: str | None = None,
        ended: bool = False,
    ) -> None:
        """Merge ``metrics``/``artifacts`` into the run's, set its status, stamp its end.

        Merging is key by key and recursive for nested dicts, so a later call adds to what an
        earlier one wrote.  ``ended=True`` sets ``ended_at`` to now; status ``"running"``
        (a resumed run) clears it.

        Example: ``store.update(run_id, metrics={"test_acc": 0.8}, status="completed",
        ended=True)``.
        """
        if status is not None:
            _check_status(status, RUN_STATUSES, "run")
        new_metrics = to_json(metrics, "metrics") if metrics else None
        new_artifacts = to_json(artifacts, "artifacts") if artifacts else None

        def work(conn: sa.Connection) -> None:
            row = self._require_run(conn, run_id, lock=True)
            values: dict[str, Any] = {}
            if new_metrics:
                values["metrics"] = merge(row["metrics"], new_metrics)
            if new_artifacts:
                values["artifacts"] = merge(row["artifacts"], new_artifacts)
            if status is not None:
                values["status"] = status
                if status == "running":
                    values["ended_at"] = None
            if ended:
                values["ended_at"] = _now()
            if values:
                conn.execute(sa.update(runs).where(runs.c.id == run_id).values(**values))

        self._transact(work)

    def get_run(self, run_id: str) -> dict:
        """The run as a dict, with ``epochs``: a list of ``{"epoch": n, **metrics}`` in order.

        Example: ``store.get_run(run_id)["status"]`` gives ``'completed'``.
        """

        def work(conn: sa.Connection) -> dict:
            run = self._require_run(conn, run_id)
            rows = conn.execute(
                sa.select(epochs.c.epoch, epochs.c.metrics)
                .where(epochs.c.run_id == run_id)
                .order_by(epochs.c.epoch)
            )
            run["epochs"] = [
                {"epoch": n, **{k: v for k, v in m.items() if k != "epoch"}} for n, m in rows
            ]
            return run

        return self._transact(work, write=False)

    def resolve_id(self, prefix: str) -> str:
        """The full id of the one run whose id starts with ``prefix``.

        Example: ``store.resolve_id("3f9")`` gives ``'3f9c01ab'``.
        """
        prefix = prefix.strip()
        if not prefix:
            raise StoreError(f"Empty run id. Run `{LISTING}` to see run ids.")

        def work(conn: sa.Connection) -> list[str]:
            if conn.execute(sa.select(runs.c.id).where(runs.c.id == prefix)).first():
                return [prefix]
            # substr, not LIKE: exact and case-sensitive on every backend, no wildcards.
            matches = sa.func.substr(runs.c.id, 1, len(prefix)) == prefix
            return list(
                conn.scalars(sa.select(runs.c.id).where(matches).order_by(runs.c.id).limit(6))
            )

        ids = self._transact(work, write=False)
        if not ids:
            raise StoreError(f"No run id starts with {prefix!r}. Run `{LISTING}` to see run ids.")
        if len(ids) > 1:
            shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
            raise StoreError(
                f"Run id {prefix!r} is ambiguous: it matches {shown}. "
                f"Type more characters (`{LISTING}` shows full ids)."
            )
        return ids[0]

    def list_runs(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        group_id: str | None = None,
    ) -> list[dict]:
        """Runs (without epochs, but with ``epochs_done``, their count: a running or stopped
        run has no final metrics yet), newest first, optionally filtered.

        Example: ``[r["id"] for r in store.list_runs(status="completed")]`` gives
        ``['3f9c01ab', '0b1e7d22']``.
        """
        done = (sa.select(sa.func.count()).select_from(epochs)
                .where(epochs.c.run_id == runs.c.id).scalar_subquery().label("epochs_done"))
        query = sa.select(runs, done).order_by(runs.c.started_at.desc(), runs.c.id.desc())
        for column, value in (
            (runs.c.kind, kind),
            (runs.c.status, status),
            (runs.c.group_id, group_id),
        ):
            if value is not None:
                query = query.where(column == value)
        return self._transact(
            lambda conn: [dict(r) for r in conn.execute(query).mappings()], write=False
        )

    def run_summaries(self, *, started_after: str | None = None,
                      ids: list[str] | None = None) -> list[dict]:
        """The short form of runs — id, name, kind, status, group_id, seed, device,
        started_at, ended_at, dataset, model (``B2FL32`` for the blocks constructor),
        model_name, main metrics, error and ``epochs_done`` — of all runs, of those started
        at or after ``started_after``, or of ``ids``. A listing keeps these in memory and
        asks again only for new runs and for the ones that were running.

        Example: ``store.run_summaries(ids=["3f9c01ab"])[0]["model"]`` gives ``'B2FL32'``.
        """

        def work(conn: sa.Connection) -> list[dict]:
            rows = [dict(r) for r in conn.execute(
                summary_query(started_after=started_after, ids=ids)).mappings()]
            wanted = None if started_after is None and ids is None else [r["id"] for r in rows]
            done = dict(conn.execute(epoch_counts_query(wanted)).all()) if rows else {}
            for row in rows:
                row["epochs_done"] = int(done.get(row["id"], 0))
            return rows

        return self._transact(work, write=False)

    def activity(self) -> dict:
        """A small snapshot that changes whenever a run starts, ends or finishes an epoch:
        ``{"running": {id: epochs_done}, "statuses": {status: [count, last start, last
        end]}}`` (what a live view polls; two queries on indexed columns).

        Example: ``store.activity()["running"]`` gives ``{'3f9c01ab': 2}``.
        """

        def work(conn: sa.Connection) -> dict:
            running = {rid: int(n) for rid, _, n in conn.execute(activity_query())}
            statuses = {s: [int(n), start, end]
                        for s, n, start, end in conn.execute(status_counts_query())}
            return {"running": running, "statuses": statuses}

        return self._transact(work, write=False)

    def delete_run(self, run_id: str) -> None:
        """Delete the run, its epochs and its artifacts folder.

        Example: ``store.delete_run(run_id)``.
        """
        folder = self._artifacts_path(run_id)

        def work(conn: sa.Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(sa.delete(epochs).where(epochs.c.run_id == run_id))
            conn.execute(sa.delete(runs).where(runs.c.id == run_id))

        self._transact(work)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(
                f"Run {run_id} was deleted but its files in {str(folder)!r} could not be "
                f"({exc.strerror}). Delete that folder by hand."
            ) from exc

    # ---------------------------------------------------------------- groups

    def create_group(self, *, kind: str, name: str | None, config: dict) -> str:
        """Record a group of runs (a comparison, a search) and return its id.

        Example: ``gid = store.create_group(kind="compare", name="optimisers", config={})``,
        then ``store.create_run(name=None, config=cfg, seed=0, env={}, group_id=gid)``.
        """
        row = {
            "kind": kind,
            "name": name,
            "config": to_json(config, "config"),
            "created_at": _now(),
            "status": "running",
            "metrics": {},
        }
        return self._insert_with_new_id(groups, row, lambda conn: None)

    def get_group(self, group_id: str) -> dict:
        """The group as a dict, with ``run_ids`` in the order the runs started.

        Example: ``store.get_group(gid)["run_ids"]`` gives ``['3f9c01ab', '0b1e7d22']``.
        """

        def work(conn: sa.Connection) -> dict:
            group = self._require_group(conn, group_id)
            group["run_ids"] = self._run_ids(conn, [group_id])[group_id]
            return group

        return self._transact(work, write=False)

    def update_group(
        self, group_id: str, *, status: str | None = None, metrics: dict | None = None,
        replace: tuple[str, ...] = (),
    ) -> None:
        """Set the group's status and merge ``metrics`` into its own (as :meth:`update`); the
        top-level keys named in ``replace`` are replaced whole instead (a snapshot such as a
        search's summary must not keep keys of an earlier one).

        Example: ``store.update_group(gid, status="completed", metrics={"best": run_id})``.
        """
        if status is not None:
            _check_status(status, GROUP_STATUSES, "group")
        new_metrics = to_json(metrics, "metrics") if metrics else None

        def work(conn: sa.Connection) -> None:
            group = self._require_group(conn, group_id, lock=True)
            values: dict[str, Any] = {}
            if new_metrics:
                kept = {k: v for k, v in group["metrics"].items() if k not in replace}
                values["metrics"] = merge(kept, new_metrics)
            if status is not None:
                values["status"] = status
            if values:
                conn.execute(sa.update(groups).where(groups.c.id == group_id).values(**values))

        self._transact(work)

    def list_groups(self, kind: str | None = None, status: str | None = None) -> list[dict]:
        """Groups (of ``kind``, with ``status``, when given), newest first, each with its
        ``run_ids``.

        Example: ``[g["name"] for g in store.list_groups(kind="search")]`` gives
        ``['b2-lr']``.
        """
        query = sa.select(groups).order_by(groups.c.created_at.desc(), groups.c.id.desc())
        if kind is not None:
            query = query.where(groups.c.kind == kind)
        if status is not None:
            query = query.where(groups.c.status == status)

        def work(conn: sa.Connection) -> list[dict]:
            found = [dict(r) for r in conn.execute(query).mappings()]
            members = self._run_ids(conn, [g["id"] for g in found])
            for group in found:
                group["run_ids"] = members[group["id"]]
            return found

        return self._transact(work, write=False)

    # -------------------------------------------------------------- internals

    def _artifacts_path(self, run_id: str) -> Path:
        # The id becomes a folder name: refuse anything that could leave artifacts_root.
        if not _SAFE_ID.fullmatch(run_id):
            raise StoreError(f"Invalid run id {run_id!r}. Run `{LISTING}` to see run ids.")
        return self.artifacts_root / run_id

    def _require_run(self, conn: sa.Connection, run_id: str, lock: bool = False) -> dict:
        query = sa.select(runs).where(runs.c.id == run_id)
        row = conn.execute(query.with_for_update() if lock else query).mappings().first()
        if row is None:
            raise StoreError(f"No run with id {run_id!r}. Run `{LISTING}` to see run ids.")
        return dict(row)

    def _require_group(self, conn: sa.Connection, group_id: str, lock: bool = False) -> dict:
        query = sa.select(groups).where(groups.c.id == group_id)
        row = conn.execute(query.with_for_update() if lock else query).mappings().first()
        if row is None:
            raise StoreError(f"No group (comparison or search) with id {group_id!r} in {self!r}.")
        return dict(row)

    @staticmethod
    def _run_ids(conn: sa.Connection, group_ids: list[str]) -> dict[str, list[str]]:
        members: dict[str, list[str]] = {gid: [] for gid in group_ids}
        if group_ids:
            rows = conn.execute(
                sa.select(runs.c.group_id, runs.c.id)
                .where(runs.c.group_id.in_(group_ids))
                .order_by(runs.c.started_at, runs.c.id)
            )
            for gid, rid in rows:
                members[gid].append(rid)
        return members

    def _insert_with_new_id(
        self, table: sa.Table, row: dict, check: Callable[[sa.Connection], None]
    ) -> str:
        def work(conn: sa.Connection) -> str:
            check(conn)
            new_id = _new_id()
            conn.execute(sa.insert(table).values(id=new_id, **row))
            return new_id

        for _ in range(_ID_ATTEMPTS):
            try:
                return self._transact(work)
            except sa.exc.IntegrityError:
                continue  # the random id was taken: draw another
        raise StoreError(f"Could not find a free id in {table.name} of {self!r}; try again.")

    @staticmethod
    def _schema_missing(conn: sa.Connection) -> bool:
        present = set(sa.inspect(conn).get_table_names())
        return not set(metadata.tables) <= present

    @staticmethod
    def _create_schema(conn: sa.Connection) -> None:
        # Two processes opening a new store together must not both CREATE TABLE.  SQLite:
        # this write transaction (BEGIN IMMEDIATE) already excludes other writers.
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        metadata.create_all(conn)
        # Stores made before the version was recorded have the version-1 tables.
        if Store._schema_version(conn) == 0:
            conn.execute(sa.insert(info).values(key="schema_version", value=str(SCHEMA_VERSION)))

    @staticmethod
    def _schema_version(conn: sa.Connection) -> int:
        value = conn.execute(
            sa.select(info.c.value).where(info.c.key == "schema_version")
        ).scalar_one_or_none()
        return int(value) if value is not None else 0

    def _transact(
        self,
        work: Callable[[sa.Connection], T],
        *,
        write: bool = True,
        action: str = "use",
    ) -> T:
        """Run ``work`` in one transaction, retrying it on lock contention."""
        attempt = 0
        while True:
            try:
                with self.engine.connect() as conn:
                    conn.execution_options(**{db.WRITE_OPTION: write})
                    with conn.begin():
                        return work(conn)
            except sa.exc.IntegrityError:
                raise
            except sa.exc.DBAPIError as exc:
                attempt += 1
                # A server restart is waited out (about half a minute) once the store is open.
                retry = db.is_transient(exc) or (action != "open" and db.is_disconnect(exc))
                if attempt >= _ATTEMPTS or not retry:
                    raise self._failure(exc, action) from exc
                time.sleep(min(10.0, 0.05 * 2**attempt) * (0.5 + random.random()))

    def _failure(self, exc: sa.exc.DBAPIError, action: str) -> StoreError:
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else repr(exc)
        if db.is_sqlite(self._url):
            hint = "Check that the file is a convbench SQLite database and its folder is writable."
        else:
            hint = (
                "Check that the server is running and reachable, and that the host, port, "
                "user, password and database name in the URL are right."
            )
        return StoreError(f"Cannot {action} run store {db.safe_url(self._url)!r}: {reason}. {hint}")
