"""Keeps a run's lease: renews it by short statements while the run
executes, and says when it is lost or a cancel was asked for."""

from __future__ import annotations

import logging
import threading
import uuid

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from runsvc.redact import describe_exception
from runsvc.store import runs as store

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker owns the run now; stop without writing anything."""


class LeaseKeeper(threading.Thread):
    """Renews the lease every third of its length on a connection of its own.

    The batch transactions hold the run's row only for their last statement,
    so a renewal waits at most for a commit, never for a source call."""

    def __init__(self, pool: ConnectionPool, run_id: uuid.UUID, owner: str, seconds: float):
        super().__init__(name=f"lease-{run_id}", daemon=True)
        self._pool, self._run_id, self._owner, self._seconds = pool, run_id, owner, seconds
        self._stop_event = threading.Event()
        self.lost = threading.Event()
        self.cancel_requested = False

    def run(self) -> None:
        while not self._stop_event.wait(self._seconds / 3):
            try:
                with self._pool.connection(timeout=self._seconds / 3) as conn:
                    cancel = store.run_lease_renew(
                        conn, self._run_id, owner=self._owner, lease_seconds=self._seconds
                    )
            except (psycopg.Error, PoolTimeout) as exc:
                # Keep trying: the batch transactions check the owner as well.
                log.warning(
                    "lease renewal of run %s failed: %s", self._run_id, describe_exception(exc)
                )
                continue
            if cancel is None:
                self.lost.set()
                return
            self.cancel_requested = self.cancel_requested or cancel

    def stop(self) -> None:
        """Stops renewing (and waits for a renewal in flight to end)."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()
