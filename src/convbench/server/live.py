"""Live updates: one poll of the store shared by every open page, sent as server-sent events.

Every ``poll_s`` seconds one task reads :meth:`Store.activity` (running runs and their epoch
counts, runs per status), the size of each running run's batch file and the job queue, and
brings the Runs listing (:class:`~convbench.server.listing.RunIndex`) up to date. When
that snapshot changes, every connected page gets it as one ``data:`` event and fetches what
it shows. A run started anywhere — this page, a terminal, another machine on a shared
PostgreSQL store — appears within one poll; a hundred open tabs still cost one poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..store import Store
from . import control
from .jobs import Jobs
from .listing import RunIndex

KEEPALIVE_S = 15.0  # a comment line keeps proxies from closing an idle stream
log = logging.getLogger("convbench.server")


class Live:
    """The shared poll and its subscribers."""

    def __init__(self, store: Store, jobs: Jobs, index: RunIndex, poll_s: float):
        self.store, self.jobs, self.index, self.poll_s = store, jobs, index, poll_s
        self.current: dict[str, Any] = {}
        self.version = 0
        self._subscribers: set[asyncio.Queue] = set()
        self._closing = asyncio.Event()

    def snapshot(self) -> dict[str, Any]:
        """What the pages watch (blocking: run in a thread)."""
        self.jobs.tick()
        activity = self.store.activity()
        self.index.refresh(activity)  # the Runs listing reads new and changed runs only
        running = {}
        for run_id, epochs in activity["running"].items():
            try:
                size = (self.store.run_dir(run_id) / control.BATCHES).stat().st_size
            except OSError:
                size = 0
            running[run_id] = {"epochs": epochs, "batches": size}
        return {"running": running, "statuses": activity["statuses"],
                "jobs": self.jobs.snapshot()}

    async def poll_forever(self) -> None:
        """The one poll loop; started with the app, cancelled at shutdown."""
        while not self._closing.is_set():
            try:
                snap = await asyncio.to_thread(self.snapshot)
            except Exception:  # a store hiccup must not end live updates for good
                log.exception("live poll failed; retrying")
                snap = None
            if snap is not None and snap != self.current:
                self.current, self.version = snap, self.version + 1
                for queue in list(self._subscribers):
                    queue.put_nowait(self.version)
            try:
                await asyncio.wait_for(self._closing.wait(), self.poll_s)
            except TimeoutError:
                pass

    def close(self) -> None:
        """End the poll and every open stream (server shutdown)."""
        self._closing.set()
        for queue in list(self._subscribers):
            queue.put_nowait(None)

    async def stream(self) -> AsyncIterator[str]:
        """The event stream of one page: the current snapshot, then every change."""
        queue: asyncio.Queue = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            if self.current:
                yield _event(self.version, self.current)
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if item is None:
                    return
                # Several changes queued while the page was slow: send only the newest.
                while not queue.empty():
                    item = queue.get_nowait() or item
                yield _event(self.version, self.current)
        finally:
            self._subscribers.discard(queue)


def _event(version: int, data: dict[str, Any]) -> str:
    return f"id: {version}\ndata: {json.dumps(data)}\n\n"
