"""Feeds every WatchRun stream of this process from ONE Postgres LISTEN
connection. A notification names a run and its new version; the hub fetches
changed runs in one query per wake-up and hands each watcher the latest
record. Watchers keep one slot, so a slow reader skips to the newest state
instead of building a backlog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator

import psycopg
from psycopg_pool import AsyncConnectionPool

from runsvc.model import Run
from runsvc.observe.metrics import server as metrics
from runsvc.redact import describe_exception
from runsvc.store import runs as store

log = logging.getLogger(__name__)

CHANNEL = "runsvc_run_changed"


class Watcher:
    """One stream's view of a run: the newest record seen, and a wake-up."""

    def __init__(self) -> None:
        self.latest: Run | None = None
        self._changed = asyncio.Event()

    def offer(self, run: Run) -> None:
        if self.latest is None or run.version > self.latest.version:
            self.latest = run
            self._changed.set()

    async def next_after(self, version: int) -> Run:
        """The newest record with a version above `version` (waits for one)."""
        while self.latest is None or self.latest.version <= version:
            self._changed.clear()
            await self._changed.wait()
        return self.latest


class WatchHub:
    def __init__(self, conninfo: str, pool: AsyncConnectionPool, *, reconnect_delay: float = 1.0):
        self._conninfo = conninfo
        self._pool = pool
        self._reconnect_delay = reconnect_delay
        self._watchers: dict[uuid.UUID, set[Watcher]] = {}
        self._dirty: set[uuid.UUID] = set()
        # When the oldest undelivered notification of each dirty run arrived.
        self._arrived: dict[uuid.UUID, float] = {}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self.listen_connections = 0  # opened so far, for tests and metrics

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="watch-hub-listen"),
            asyncio.create_task(self._refresh(), name="watch-hub-refresh"),
        ]
        await asyncio.wait_for(self._listening.wait(), timeout=30)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def watcher_count(self) -> int:
        return sum(len(ws) for ws in self._watchers.values())

    @contextlib.asynccontextmanager
    async def watch(self, run_id: uuid.UUID) -> AsyncIterator[Watcher]:
        """Registers a watcher; register BEFORE reading the current state so
        that no change between the read and the registration is missed."""
        watcher = Watcher()
        self._watchers.setdefault(run_id, set()).add(watcher)
        try:
            yield watcher
        finally:
            watchers = self._watchers.get(run_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[run_id]

    def _mark_dirty(self, run_ids: set[uuid.UUID]) -> None:
        self._dirty |= run_ids
        self._wakeup.set()

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=f"runsvc-watch-hub:{os.getpid()}",
                )
            except psycopg.Error as exc:
                log.warning("watch hub cannot connect: %s", describe_exception(exc))
                await asyncio.sleep(self._reconnect_delay)
                continue
            self.listen_connections += 1
            if self.listen_connections > 1:
                metrics.watch_hub_reconnects.inc()
            try:
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    # Changes made while no connection listened were missed.
                    self._mark_dirty(set(self._watchers))
                    async for notify in conn.notifies():
                        run_id = self._parse(notify.payload)
                        if run_id is not None and run_id in self._watchers:
                            self._arrived.setdefault(run_id, time.perf_counter())
                            self._mark_dirty({run_id})
            except psycopg.Error as exc:
                log.warning("watch hub lost its connection: %s", describe_exception(exc))
                await asyncio.sleep(self._reconnect_delay)

    @staticmethod
    def _parse(payload: str) -> uuid.UUID | None:
        run_id, _, _ = payload.partition(":")
        try:
            return uuid.UUID(run_id)
        except ValueError:
            return None

    async def _refresh(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            run_ids, self._dirty = self._dirty & set(self._watchers), set()
            for gone in set(self._arrived) - run_ids - self._dirty:
                del self._arrived[gone]  # its watchers left before delivery
            if not run_ids:
                continue
            try:
                async with self._pool.connection() as conn:
                    runs = await store.run_get_many(conn, list(run_ids))
            except psycopg.Error as exc:
                log.warning("watch hub refresh failed: %s", describe_exception(exc))
                self._mark_dirty(run_ids)
                await asyncio.sleep(self._reconnect_delay)
                continue
            for run in runs:
                for watcher in list(self._watchers.get(run.id, ())):
                    watcher.offer(run)
            delivered = time.perf_counter()
            for run_id in run_ids:
                arrived = self._arrived.pop(run_id, None)
                if arrived is not None:
                    metrics.watch_delivery_seconds.observe(delivered - arrived)
