"""SQL expressions for the short form of runs that listings (the web app's Runs page) keep
in memory, and for the small snapshot a live view polls.

The data set and model come out of the JSON config (``config.data.dataset``, or a
detection run's ``config.data.source``,
``config.model.name``; the ``blocks`` constructor shown as its ``B<n>FL<f>`` shorthand, as
reports name it), metrics out of the JSON metrics — on SQLite and PostgreSQL alike.

>>> "started_at" in str(summary_query(started_after="2026-01-01"))
True
"""

from __future__ import annotations

import sqlalchemy as sa

from convbench.store.schema import epochs, runs


def _config_text(*path: str) -> sa.ColumnElement:
    return runs.c.config[path].as_string()


def _metric(key: str) -> sa.ColumnElement:
    return runs.c.metrics[(key,)].as_float()


# A classification run names its data set; a detection run its source (synth, coco, pagexml).
DATASET = sa.func.coalesce(_config_text("data", "dataset"), _config_text("data", "source"))
MODEL_NAME = _config_text("model", "name")
# "blocks" + blocks + base_filters → "B2FL32"; else the model name, or a detector's backbone.
MODEL = sa.case(
    (MODEL_NAME == "blocks",
     sa.literal("B") + _config_text("model", "blocks") + sa.literal("FL")
     + _config_text("model", "base_filters")),
    else_=sa.func.coalesce(MODEL_NAME, _config_text("model", "backbone")),
)
METRIC_KEYS = ("test_accuracy", "best_val_accuracy", "train_time_s", "params_total", "flops",
               "energy_j")
SUMMARY_COLUMNS = (runs.c.id, runs.c.name, runs.c.kind, runs.c.status, runs.c.group_id,
                   runs.c.seed, runs.c.device, runs.c.started_at, runs.c.ended_at,
                   DATASET.label("dataset"), MODEL.label("model"),
                   MODEL_NAME.label("model_name"),
                   *(_metric(k).label(k) for k in METRIC_KEYS),
                   runs.c.metrics[("error",)].as_string().label("error"))


def summary_query(*, started_after: str | None = None,
                  ids: list[str] | None = None) -> sa.Select:
    """The short form of every run, of those started at or after ``started_after`` (an
    indexed range: only new runs are read), or of ``ids``."""
    query = sa.select(*SUMMARY_COLUMNS)
    if started_after is not None:
        query = query.where(runs.c.started_at >= started_after)
    if ids is not None:
        query = query.where(runs.c.id.in_(ids))
    return query


def epoch_counts_query(ids: list[str] | None = None) -> sa.Select:
    """Finished epochs per run (of ``ids``, or of all runs)."""
    query = sa.select(epochs.c.run_id, sa.func.count()).group_by(epochs.c.run_id)
    return query if ids is None else query.where(epochs.c.run_id.in_(ids))


def activity_query() -> sa.Select:
    """Per running run, its finished epochs: what the live view watches. Cheap at any store
    size: the status column is indexed and only running runs are joined with their epochs."""
    done = (sa.select(sa.func.count()).select_from(epochs)
            .where(epochs.c.run_id == runs.c.id).scalar_subquery())
    return (sa.select(runs.c.id, runs.c.status, done.label("epochs_done"))
            .where(runs.c.status == "running").order_by(runs.c.id))


def status_counts_query() -> sa.Select:
    """Runs per status, with the newest start and end (a new or ended run changes them)."""
    return sa.select(runs.c.status, sa.func.count(), sa.func.max(runs.c.started_at),
                     sa.func.max(runs.c.ended_at)).group_by(runs.c.status)
