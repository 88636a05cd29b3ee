"""The tables of the run store: ``groups``, ``runs`` and their ``epochs``, plus
``convbench_info`` holding the schema version.

Timestamps are UTC ISO-8601 strings with microseconds (``2024-05-01T12:00:00.000000+00:00``):
they read back identically on every backend and sort chronologically as text.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Raise when a change to these tables needs a migration; a store written by a newer
# convbench (higher version) is refused rather than misread.
SCHEMA_VERSION = 1

ID = sa.String(32)
TIMESTAMP = sa.String(40)

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False, index=True),
    sa.Column("name", sa.Text),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("kind", sa.Text, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("group_id", ID, sa.ForeignKey("groups.id"), index=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("env", sa.JSON, nullable=False),
    sa.Column("device", sa.Text),
    sa.Column("started_at", TIMESTAMP, nullable=False, index=True),
    sa.Column("ended_at", TIMESTAMP),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("artifacts", sa.JSON, nullable=False),
)

epochs = sa.Table(
    "epochs",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("metrics", sa.JSON, nullable=False),
)

info = sa.Table(
    "convbench_info",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
