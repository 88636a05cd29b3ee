"""SQL expressions for paged, sorted and filtered run listings (the web app's Runs page).

Everything is computed in the database, on SQLite and PostgreSQL alike: the data set and
model name come out of the JSON config (``config.data.dataset``, ``config.model.name``; the
``blocks`` constructor shown as its ``B<n>FL<f>`` shorthand, as reports name it), metrics
out of the JSON metrics, so a page of 50 runs out of 10,000 is one small query plus a count.

>>> sorted(SORT_KEYS)[:3]
['dataset', 'ended_at', 'id']
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from convbench.errors import StoreError
from convbench.store.schema import epochs, runs

# Largest page a caller may ask for: a listing is for reading, not for exporting the store.
MAX_PAGE = 500


def _config_text(*path: str) -> sa.ColumnElement:
    return runs.c.config[path].as_string()


def _metric(key: str) -> sa.ColumnElement:
    return runs.c.metrics[(key,)].as_float()


DATASET = _config_text("data", "dataset")
_MODEL_NAME = _config_text("model", "name")
# "blocks" + blocks + base_filters → "B2FL32"; else the model name, or a detector's backbone.
MODEL = sa.case(
    (_MODEL_NAME == "blocks",
     sa.literal("B") + _config_text("model", "blocks") + sa.literal("FL")
     + _config_text("model", "base_filters")),
    else_=sa.func.coalesce(_MODEL_NAME, _config_text("model", "backbone")),
)
METRIC_KEYS = ("test_accuracy", "best_val_accuracy", "train_time_s", "params_total", "flops",
               "energy_j")
SORT_KEYS: dict[str, sa.ColumnElement] = {
    "started_at": runs.c.started_at, "ended_at": runs.c.ended_at, "id": runs.c.id,
    "name": runs.c.name, "kind": runs.c.kind, "status": runs.c.status, "seed": runs.c.seed,
    "group_id": runs.c.group_id, "dataset": DATASET, "model": MODEL,
    **{key: _metric(key) for key in METRIC_KEYS},
}


@dataclass(frozen=True)
class RunFilter:
    """What a listing keeps: exact kind/status/data set/model/group, and ``text`` found
    (case-insensitively) in the id, name, model or data set."""

    kind: str | None = None
    status: str | None = None
    dataset: str | None = None
    model: str | None = None
    group_id: str | None = None
    text: str | None = None

    def where(self) -> list[sa.ColumnElement]:
        """The WHERE clauses of this filter."""
        clauses: list[sa.ColumnElement] = []
        for column, value in ((runs.c.kind, self.kind), (runs.c.status, self.status),
                              (DATASET, self.dataset), (MODEL, self.model),
                              (runs.c.group_id, self.group_id)):
            if value:
                clauses.append(column == value)
        if self.text and self.text.strip():
            # Escape LIKE's wildcards: the text is searched for literally.
            needle = self.text.strip().lower()
            needle = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{needle}%"
            clauses.append(sa.or_(*(
                sa.func.lower(sa.func.coalesce(c, "")).like(pattern, escape="\\")
                for c in (runs.c.id, runs.c.name, MODEL, DATASET))))
        return clauses


def listing_query(flt: RunFilter, sort: str, descending: bool, offset: int,
                  limit: int) -> tuple[sa.Select, sa.Select]:
    """(the page's SELECT, the COUNT of all matching runs).

    >>> page, count = listing_query(RunFilter(kind="train"), "test_accuracy", True, 0, 50)
    >>> "LIMIT" in str(page)
    True
    """
    if sort not in SORT_KEYS:
        raise StoreError(f"Cannot sort runs by {sort!r}; use one of {', '.join(SORT_KEYS)}.")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise StoreError(f"A page holds 1 to {MAX_PAGE} runs from offset 0 up; got "
                         f"limit={limit}, offset={offset}.")
    key = SORT_KEYS[sort]
    order = key.desc() if descending else key.asc()
    done = (sa.select(sa.func.count()).select_from(epochs)
            .where(epochs.c.run_id == runs.c.id).scalar_subquery())
    where = flt.where()
    page = (sa.select(runs.c.id, runs.c.name, runs.c.kind, runs.c.status, runs.c.group_id,
                      runs.c.seed, runs.c.device, runs.c.started_at, runs.c.ended_at,
                      DATASET.label("dataset"), MODEL.label("model"),
                      *(_metric(k).label(k) for k in METRIC_KEYS),
                      runs.c.metrics[("error",)].as_string().label("error"),
                      done.label("epochs_done"))
            .where(*where)
            # NULLs (runs without that metric yet) last either way; id breaks ties stably.
            .order_by(order.nulls_last(), runs.c.id.desc() if descending else runs.c.id)
            .offset(offset).limit(limit))
    count = sa.select(sa.func.count()).select_from(runs).where(*where)
    return page, count


def facets_query() -> list[tuple[str, sa.Select]]:
    """(name, SELECT DISTINCT) of each filter with a fixed set of values."""
    return [(name, sa.select(expr).distinct().where(expr.is_not(None)).order_by(expr))
            for name, expr in (("kind", runs.c.kind), ("status", runs.c.status),
                               ("dataset", DATASET), ("model", MODEL))]


def activity_query() -> sa.Select:
    """Per running run (plus a summary row per status): what the live view watches.

    Cheap at any store size: the status column is indexed and only running runs are joined
    with their epochs.
    """
    done = (sa.select(sa.func.count()).select_from(epochs)
            .where(epochs.c.run_id == runs.c.id).scalar_subquery())
    return (sa.select(runs.c.id, runs.c.status, done.label("epochs_done"))
            .where(runs.c.status == "running").order_by(runs.c.id))


def status_counts_query() -> sa.Select:
    """Runs per status, and the newest start time (a new run changes it)."""
    return sa.select(runs.c.status, sa.func.count(), sa.func.max(runs.c.started_at),
                     sa.func.max(runs.c.ended_at)).group_by(runs.c.status)
