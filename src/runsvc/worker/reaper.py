"""Sends the message again for runs that nobody is executing: queued past
their dispatch time (the message was lost) or running with an expired lease
(the worker died or stopped), of its worker's queue. Runs in every worker
process. It sends first and records after: a failed send leaves the run due
for the next pass."""

from __future__ import annotations

import logging
import threading
import uuid

from psycopg_pool import ConnectionPool

from runsvc.broker import Dispatcher
from runsvc.observe import runs as observe
from runsvc.redact import describe_exception
from runsvc.store import runs as store
from runsvc.worker.stop import StopSignal

log = logging.getLogger(__name__)

BATCH = 500


class Reaper(threading.Thread):
    def __init__(
        self,
        pool: ConnectionPool,
        dispatcher: Dispatcher,
        *,
        interval: float,
        redispatch_after: float,
        stop: StopSignal | None = None,
    ) -> None:
        super().__init__(name="runsvc-reaper", daemon=True)
        self._pool = pool
        self._dispatcher = dispatcher
        self._interval = interval
        self._redispatch_after = redispatch_after
        self._stop_event = threading.Event()
        self._worker_stop = stop

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            if self._worker_stop is not None and self._worker_stop.requested:
                return  # a stopping worker leaves dispatching to the others
            try:
                self.reap_once()
            except Exception as exc:
                log.warning("reaper pass failed: %s", describe_exception(exc))

    def reap_once(self) -> int:
        """One pass; returns how many messages went out."""
        sent = 0
        while not self._stop_event.is_set():
            # Held for two intervals, so that concurrent reapers skip them
            # while this one sends; a reaper that dies mid-pass delays them
            # by no more than that.
            with self._pool.connection() as conn:
                run_ids = store.run_dispatch_take(
                    conn, limit=BATCH, hold=2 * self._interval, queue=self._dispatcher.queue_name
                )
            if not run_ids:
                break
            delivered, undelivered = self._send(run_ids)
            with self._pool.connection() as conn, conn.transaction():
                if delivered:
                    store.run_dispatch_sent(
                        conn, delivered, redispatch_after=self._redispatch_after
                    )
                if undelivered:
                    store.run_dispatch_due_again(conn, undelivered)
            observe.redispatched(len(delivered))
            sent += len(delivered)
            if undelivered or len(run_ids) < BATCH:
                break  # the broker is down (try next pass), or nothing more is due
        if sent:
            log.info("reaper dispatched %d runs again", sent)
        return sent

    def _send(self, run_ids: list[uuid.UUID]) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        for index, run_id in enumerate(run_ids):
            try:
                self._dispatcher.send(run_id)
            except Exception as exc:
                # The broker is likely down: the rest stay due, for the next pass.
                log.warning(
                    "reaper could not send run %s (%d left due): %s",
                    run_id,
                    len(run_ids) - index,
                    describe_exception(exc),
                )
                return run_ids[:index], run_ids[index:]
        return run_ids, []

    def stop(self) -> None:
        self._stop_event.set()
