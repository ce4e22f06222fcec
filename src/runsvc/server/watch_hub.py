"""Feeds every WatchRun stream of this process from ONE Postgres LISTEN
connection. A notification names a run and its new version; the hub fetches
the changed runs in one query per wake-up (new watchers' first states too)
and hands every watcher of a run the same snapshot. Watchers keep one slot,
so a slow reader skips to the newest state instead of building a backlog.

It cannot fail silently: the LISTEN connection is pinged (and has TCP
keepalives), so a dead or half-open one is replaced within
`ping_seconds + ping_timeout` (the ping goes out over a pooled connection;
while none can send it, the wait goes on); both tasks run under a
supervisor that logs an unexpected error, restarts the task and resyncs
every watcher; after any reconnect every watched run is read again, so no
change is missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import psycopg
from psycopg_pool import AsyncConnectionPool
from tenantpilot.runs.v1 import runs_pb2

from runsvc.model import RunState
from runsvc.observe.metrics import server as metrics
from runsvc.redact import describe_exception
from runsvc.server.convert import run_to_proto
from runsvc.store import runs as store
from runsvc.store.errors import StoreUnavailable
from runsvc.store.pool import KEEPALIVES

log = logging.getLogger(__name__)

CHANNEL = "runsvc_run_changed"


class Snapshot:
    """One version of a run, shared by all its watchers: the state and the
    stream message, built once however many streams send it."""

    __slots__ = ("_response", "state")

    def __init__(self, state: RunState) -> None:
        self.state = state
        self._response: runs_pb2.WatchRunResponse | None = None

    @property
    def version(self) -> int:
        return self.state.version

    def response(self) -> runs_pb2.WatchRunResponse:
        if self._response is None:
            self._response = runs_pb2.WatchRunResponse(run=run_to_proto(self.state))
        return self._response


class Watcher:
    """One stream's view of a run: the newest snapshot seen, and a wake-up."""

    __slots__ = ("_broken", "_error", "_missing", "_waiter", "latest")

    def __init__(self) -> None:
        self.latest: Snapshot | None = None
        self._missing = False
        self._error: BaseException | None = None
        self._broken = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, snapshot: Snapshot) -> None:
        if self.latest is None or snapshot.version > self.latest.version:
            self.latest = snapshot
            self._wake()

    def not_found(self) -> None:
        """The hub's read found no such run (only matters before the first state)."""
        if self.latest is None:
            self._missing = True
            self._wake()

    def failed(self, error: BaseException) -> None:
        """The hub could not read the first state."""
        if self.latest is None:
            self._error = error
            self._wake()

    def broken(self, error: Exception) -> None:
        """The run cannot be read any more: the stream ends with an error."""
        self._error = error
        self._broken = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def first(self) -> Snapshot | None:
        """The run's state as read after this watcher registered; None when
        there is no such run. Raises StoreUnavailable when it cannot be read."""
        while self.latest is None:
            if self._broken:
                raise RuntimeError("the watch hub cannot read this run") from self._error
            if self._missing:
                return None
            if self._error is not None:
                raise StoreUnavailable("the watch hub cannot read the run") from self._error
            await self._wait()
        return self.latest

    async def next_after(self, version: int) -> Snapshot:
        """The newest snapshot with a version above `version` (waits for one)."""
        while self.latest is None or self.latest.version <= version:
            if self._broken:
                raise RuntimeError("the watch hub cannot read this run") from self._error
            await self._wait()
        return self.latest


class _Watching:
    """One stream's registration with the hub, as a context manager. A class
    rather than a generator: every open stream holds one."""

    __slots__ = ("_hub", "_run_id", "_watcher")

    def __init__(self, hub: WatchHub, run_id: uuid.UUID) -> None:
        self._hub = hub
        self._run_id = run_id
        self._watcher: Watcher | None = None

    async def __aenter__(self) -> Watcher:
        self._watcher = self._hub._register(self._run_id)
        return self._watcher

    async def __aexit__(self, *exc_info: object) -> None:
        if self._watcher is not None:
            self._hub._unregister(self._run_id, self._watcher)
            self._watcher = None


class WatchHub:
    def __init__(
        self,
        conninfo: str,
        pool: AsyncConnectionPool,
        *,
        reconnect_delay: float = 1.0,
        ping_seconds: float = 10.0,
        ping_timeout: float = 5.0,
    ):
        self._conninfo = conninfo
        self._pool = pool
        self._reconnect_delay = reconnect_delay
        self._ping_seconds = ping_seconds
        self._ping_timeout = ping_timeout
        self._watchers: dict[uuid.UUID, set[Watcher]] = {}
        self._dirty: set[uuid.UUID] = set()
        # When the oldest undelivered notification of each dirty run arrived.
        self._arrived: dict[uuid.UUID, float] = {}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        # This hub's own channel, which only its pings notify.
        self.ping_channel = f"runsvc_watch_ping_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        self.watcher_count = 0
        self.listen_connections = 0  # opened so far, for tests and metrics
        self.restarts = 0  # tasks restarted after an unexpected error
        self.pings_heard = 0  # pings that came back on the LISTEN connection

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._supervise("listen", self._listen), name="watch-hub-listen"),
            asyncio.create_task(
                self._supervise("refresh", self._refresh), name="watch-hub-refresh"
            ),
        ]
        await asyncio.wait_for(self._listening.wait(), timeout=30)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def watch(self, run_id: uuid.UUID) -> _Watching:
        """`async with hub.watch(run_id) as watcher`: registers a watcher and
        asks for the run's current state, read after the registration, so
        that no change in between is missed."""
        return _Watching(self, run_id)

    def _register(self, run_id: uuid.UUID) -> Watcher:
        watcher = Watcher()
        self._watchers.setdefault(run_id, set()).add(watcher)
        self.watcher_count += 1
        self._mark_dirty({run_id})
        return watcher

    def _unregister(self, run_id: uuid.UUID, watcher: Watcher) -> None:
        self.watcher_count -= 1
        watchers = self._watchers.get(run_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[run_id]

    def _mark_dirty(self, run_ids: set[uuid.UUID]) -> None:
        self._dirty |= run_ids
        self._wakeup.set()

    def _resync(self) -> None:
        """Reads every watched run again (after a reconnect or a restart)."""
        self._mark_dirty(set(self._watchers))

    async def _supervise(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.restarts += 1
                log.error(
                    "watch hub %s task failed, restarting it: %s", name, describe_exception(exc)
                )
                self._resync()
                await asyncio.sleep(self._reconnect_delay)

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=f"runsvc-watch-hub:{os.getpid()}",
                    connect_timeout=max(2, int(self._ping_timeout)),
                    **KEEPALIVES,
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
                    await conn.execute(f"LISTEN {self.ping_channel}")
                    self._listening.set()
                    # Changes made while no connection listened were missed.
                    self._resync()
                    await self._receive(conn)
            except (psycopg.Error, TimeoutError) as exc:
                log.warning("watch hub lost its connection: %s", describe_exception(exc))
                await asyncio.sleep(self._reconnect_delay)

    async def _receive(self, conn: psycopg.AsyncConnection) -> None:
        """Hands on notifications; every `ping_seconds` a ping proves the
        connection alive (a half-open one never errors by itself). The ping
        is not a query on this connection: one that timed out would have to
        be cancelled, and psycopg then waits up to 10 s more for it."""
        while True:
            async for notify in conn.notifies(timeout=self._ping_seconds):
                self._on_notify(notify)
            if await self._ping():
                await self._hear_ping(conn)

    def _on_notify(self, notify: psycopg.Notify) -> None:
        run_id = self._parse(notify.payload)
        if run_id is not None and run_id in self._watchers:
            # When it arrived: the notify-to-delivery latency.
            self._arrived.setdefault(run_id, time.perf_counter())
            self._mark_dirty({run_id})

    async def _ping(self) -> bool:
        """Asks Postgres, over a pooled connection, to notify this hub's own
        channel. False if it cannot be asked now (the pool busy or down):
        then the LISTEN connection is not judged this round."""
        try:
            # One deadline for the pool's wait and the statement alike.
            async with asyncio.timeout(self._ping_timeout), self._pool.connection() as conn:
                await store.channel_notify(conn, self.ping_channel)
        except (psycopg.Error, TimeoutError) as exc:
            log.warning("watch hub cannot send its ping: %s", describe_exception(exc))
            return False
        return True

    async def _hear_ping(self, conn: psycopg.AsyncConnection) -> None:
        """Waits up to `ping_timeout` for the ping on the LISTEN connection,
        handing on the notifications that come first."""
        async with contextlib.aclosing(conn.notifies(timeout=self._ping_timeout)) as notifies:
            async for notify in notifies:
                if notify.channel == self.ping_channel:
                    self.pings_heard += 1
                    return
                self._on_notify(notify)
        raise TimeoutError(f"the LISTEN connection did not hear its ping in {self._ping_timeout} s")

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
            run_ids, self._dirty = self._dirty & self._watchers.keys(), set()
            for gone in set(self._arrived) - run_ids - self._dirty:
                del self._arrived[gone]  # its watchers left before delivery
            if not run_ids:
                continue
            try:
                states = await self._read(run_ids)
            except psycopg.Error as exc:
                log.warning("watch hub refresh failed: %s", describe_exception(exc))
                for run_id in run_ids:
                    for watcher in self._watchers.get(run_id, ()):
                        watcher.failed(exc)
                self._mark_dirty(run_ids)
                await asyncio.sleep(self._reconnect_delay)
                continue
            for run_id in run_ids:
                state = states.get(run_id)
                watchers = self._watchers.get(run_id, ())
                if isinstance(state, RunState):
                    snapshot = Snapshot(state)
                    for watcher in watchers:
                        watcher.offer(snapshot)
                elif state is None:  # no such run
                    for watcher in watchers:
                        watcher.not_found()
                else:
                    for watcher in list(watchers):
                        watcher.broken(state)

            delivered = time.perf_counter()
            for run_id in run_ids:
                arrived = self._arrived.pop(run_id, None)
                if arrived is not None:
                    metrics.watch_delivery_seconds.observe(delivered - arrived)

    async def _read(self, run_ids: set[uuid.UUID]) -> dict[uuid.UUID, RunState | Exception]:
        """The runs, in one query; if a row cannot be read (a bug, or a row
        no code wrote), each run on its own, so that one bad run ends only
        its own watchers and the others go on."""
        async with self._pool.connection() as conn:
            try:
                return {state.id: state for state in await store.run_get_many(conn, list(run_ids))}
            except psycopg.Error:
                raise
            except Exception as exc:
                log.error("watch hub cannot read runs: %s", describe_exception(exc))
            found: dict[uuid.UUID, RunState | Exception] = {}
            for run_id in run_ids:
                try:
                    for state in await store.run_get_many(conn, [run_id]):
                        found[run_id] = state
                except psycopg.Error:
                    raise
                except Exception as exc:
                    log.error("watch hub cannot read run %s: %s", run_id, describe_exception(exc))
                    found[run_id] = exc
            return found
