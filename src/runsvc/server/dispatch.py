"""How a started run gets its Dramatiq message: written in the run's own
transaction (the Postgres broker), or sent after commit by one thread from a
bounded queue, in batches (RabbitMQ, Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import tenacity
from psycopg_pool import AsyncConnectionPool

from runsvc.broker import Dispatcher, run_message
from runsvc.redact import describe_exception
from runsvc.store import runs as store
from runsvc.store.runs import QueuedMessage

log = logging.getLogger(__name__)


class RunDispatch(Protocol):
    def queued_message(self, run_id: uuid.UUID) -> QueuedMessage | None:
        """The message to write with the run, if the broker allows."""

    def after_commit(self, run_id: uuid.UUID) -> None:
        """Called once a new run is committed; must not block."""

    async def close(self, grace: float) -> None: ...


class TransactionalDispatch:
    """The Postgres broker: the message is a row of its queue table, written
    by the statement that creates the run, so a committed run always has its
    message. The consumers' wake-up NOTIFY is sent after commit, one for
    all the runs committed meanwhile (a NOTIFY in every StartRun's own
    commit would serialise those commits on Postgres' notification queue).
    The first run after a quiet spell wakes them at once; the runs of the
    next `coalesce_seconds` share one NOTIFY, so a steady stream of starts
    costs at most 50 a second, not one statement per StartRun."""

    def __init__(
        self, queue_name: str, pool: AsyncConnectionPool, *, coalesce_seconds: float = 0.02
    ) -> None:
        self.queue_name = queue_name
        self._channel = f"dramatiq.{queue_name}.enqueue"
        self._pool = pool
        self._coalesce_seconds = coalesce_seconds
        self._pending = asyncio.Event()
        self._task = asyncio.create_task(self._wake_consumers(), name="dispatch-wake")

    def queued_message(self, run_id: uuid.UUID) -> QueuedMessage:
        message = run_message(self.queue_name, run_id)
        body = message.asdict()
        body["args"] = list(message.args)  # as Dramatiq's JSON encoder writes it
        return QueuedMessage(self.queue_name, message.message_id, body)

    def after_commit(self, run_id: uuid.UUID) -> None:
        self._pending.set()

    async def _wake_consumers(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            try:
                async with self._pool.connection() as conn:
                    await store.channel_notify(conn, self._channel)
            except Exception as exc:
                # The messages are committed; consumers find them at their next poll.
                log.warning("waking the workers failed: %s", describe_exception(exc))
            await asyncio.sleep(self._coalesce_seconds)

    async def close(self, grace: float) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class QueuedDispatch:
    """RabbitMQ and Redis: run ids wait in a bounded queue; one thread sends
    them in batches, retrying a failed send with backoff until it goes
    through. A full queue (the broker down for long) or a stop leaves the
    rest to the workers' reaper, which sends every run still queued past its
    dispatch time: the run is durable in Postgres either way."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        max_queued: int,
        batch_size: int,
        on_unsent: Callable[[list[uuid.UUID]], None] = lambda run_ids: None,
        on_send_failed: Callable[[], None] = lambda: None,
        max_backoff: float = 2.0,
    ) -> None:
        self._dispatcher = dispatcher
        self._on_unsent = on_unsent
        self._on_send_failed = on_send_failed
        self._queue: queue.Queue[uuid.UUID] = queue.Queue(max_queued)
        self._batch_size = batch_size
        self._max_backoff = max_backoff
        self._stopping = threading.Event()
        self._full_since: float | None = None
        self._sending = False
        self.left_to_reaper = 0  # ids not sent by this process (queue full, or stopped)
        self._thread = threading.Thread(target=self._run, name="runsvc-dispatch", daemon=True)
        self._thread.start()

    def queued_message(self, run_id: uuid.UUID) -> None:
        return None

    def after_commit(self, run_id: uuid.UUID) -> None:
        try:
            self._queue.put_nowait(run_id)
            self._full_since = None
        except queue.Full:
            self.left_to_reaper += 1
            self._on_unsent([run_id])
            if self._full_since is None:  # once per episode, not per run
                self._full_since = time.monotonic()
                log.warning(
                    "dispatch queue full (%d runs): new runs wait for the reaper",
                    self._queue.maxsize,
                )

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._sending = True
            try:
                self._send(batch)
            finally:
                self._sending = False

    def _send(self, batch: list[uuid.UUID]) -> None:
        retrying = tenacity.Retrying(
            wait=tenacity.wait_exponential(multiplier=0.05, max=self._max_backoff),
            stop=tenacity.stop_when_event_set(self._stopping),
            before_sleep=lambda state: self._failed(state, len(batch)),
        )
        try:
            for attempt in retrying:
                with attempt:
                    while batch:
                        self._dispatcher.send(batch[0])
                        batch.pop(0)
        except tenacity.RetryError:
            self.left_to_reaper += len(batch)
            self._on_unsent(list(batch))

    def _failed(self, state: tenacity.RetryCallState, runs: int) -> None:
        self._on_send_failed()
        log.warning(
            "dispatch of %d runs failed, retrying: %s",
            runs,
            describe_exception(state.outcome.exception()),
        )

    async def close(self, grace: float) -> None:
        await asyncio.to_thread(self._close, grace)

    def _close(self, grace: float) -> None:
        """Sends what is queued within `grace` seconds, then stops."""
        deadline = time.monotonic() + grace
        while (self._sending or not self._queue.empty()) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stopping.set()
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        left = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        if left:
            self.left_to_reaper += len(left)
            self._on_unsent(left)
        if self.left_to_reaper:
            log.info("%d runs left for the reaper to dispatch", self.left_to_reaper)
        self._dispatcher.close()
