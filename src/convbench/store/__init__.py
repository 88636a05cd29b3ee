"""The run store: every run, its per-epoch metrics and its groups, in SQLite or PostgreSQL.

>>> import tempfile
>>> from convbench.store import Store
>>> store = Store(tempfile.mkdtemp() + "/runs.db")
>>> run_id = store.create_run(name=None, config={}, seed=0, env={})
>>> store.get_run(run_id)["status"]
'running'
"""

from convbench.errors import StoreError
from convbench.store.store import GROUP_STATUSES, RUN_STATUSES, Store

__all__ = ["GROUP_STATUSES", "RUN_STATUSES", "Store", "StoreError"]
