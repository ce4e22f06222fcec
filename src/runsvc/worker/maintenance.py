"""Retention: deletes finished runs older than RUNSVC_RETENTION_DAYS, with
their items and restore rows, and audit events older than their own
RUNSVC_AUDIT_RETENTION_DAYS, in small batches (each a short statement)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from runsvc.redact import describe_exception
from runsvc.store import runs as store

log = logging.getLogger(__name__)

# Rows per delete statement: small enough that no statement holds many locks
# or runs long, whatever is due.
BATCH = 2000

# Children first, so that deleting a run never cascades to many rows.
_RUN_ROWS = (
    "run_items_delete_expired",
    "restore_previews_delete_expired",
    "restore_results_delete_expired",
    "run_delete_expired",
)


@dataclass(frozen=True, slots=True)
class Retention:
    run_days: float
    audit_days: float


class Maintenance(threading.Thread):
    def __init__(
        self,
        pool: ConnectionPool,
        retention: Retention,
        *,
        interval: float,
        batch: int = BATCH,
    ) -> None:
        super().__init__(name="runsvc-maintenance", daemon=True)
        self._pool = pool
        self._retention = retention
        self._interval = interval
        self._batch = batch
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            try:
                self.run_once()
            except Exception as exc:
                log.warning("retention pass failed: %s", describe_exception(exc))

    def run_once(self) -> dict[str, int]:
        """Deletes everything due, batch after batch; rows deleted per query."""
        deleted: dict[str, int] = {}
        plan = [(query, self._retention.run_days) for query in _RUN_ROWS]
        plan.append(("audit_delete_expired", self._retention.audit_days))
        for query, days in plan:
            deleted[query] = 0
            while not self._stop_event.is_set():
                with self._pool.connection() as conn:
                    n = store.expired_delete(conn, query, days=days, limit=self._batch)
                deleted[query] += n
                if n < self._batch:
                    break
        if any(deleted.values()):
            log.info(
                "retention deleted %d runs, %d items, %d audit events",
                deleted["run_delete_expired"],
                deleted["run_items_delete_expired"],
                deleted["audit_delete_expired"],
            )
        return deleted

    def stop(self) -> None:
        self._stop_event.set()
