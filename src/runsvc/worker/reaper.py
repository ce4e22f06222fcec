"""Sends the message again for runs that nobody is executing: queued past
their dispatch time (the message was lost) or running with an expired lease
(the worker died). Runs in every worker process; SKIP LOCKED and the bumped
dispatch time keep concurrent reapers from sending twice."""

from __future__ import annotations

import logging
import threading

from psycopg_pool import ConnectionPool

from runsvc.broker import Dispatcher
from runsvc.observe import runs as observe
from runsvc.redact import describe_exception
from runsvc.store import runs as store

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
    ) -> None:
        super().__init__(name="runsvc-reaper", daemon=True)
        self._pool = pool
        self._dispatcher = dispatcher
        self._interval = interval
        self._redispatch_after = redispatch_after
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            try:
                self.reap_once()
            except Exception as exc:
                log.warning("reaper pass failed: %s", describe_exception(exc))

    def reap_once(self) -> int:
        sent = 0
        while True:
            with self._pool.connection() as conn, conn.transaction():
                run_ids = store.run_redispatch_due(
                    conn, limit=BATCH, redispatch_after=self._redispatch_after
                )
            for run_id in run_ids:
                self._dispatcher.send(run_id)
            observe.redispatched(len(run_ids))
            sent += len(run_ids)
            if len(run_ids) < BATCH:
                break
        if sent:
            log.info("reaper dispatched %d runs again", sent)
        return sent

    def stop(self) -> None:
        self._stop_event.set()
