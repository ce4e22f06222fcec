"""Queue lag and load read from the database at each scrape, so they are
there even when no worker runs: `runsvc_queue_oldest_age_seconds`,
`runsvc_runs_queued` and `runsvc_runs_running`, per run type (every type,
zero when it has none). The query runs on the server's event loop and pool;
a scrape that cannot reach the database in time gets no such series."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool

from runsvc.model import RunType
from runsvc.redact import describe_exception
from runsvc.store import runs as store

log = logging.getLogger(__name__)


class QueueGauges(Collector):
    def __init__(
        self, pool: AsyncConnectionPool, loop: asyncio.AbstractEventLoop, *, timeout: float
    ) -> None:
        self._pool = pool
        self._loop = loop
        self._timeout = timeout

    async def _read(self) -> list[dict[str, Any]]:
        async with asyncio.timeout(self._timeout):
            async with self._pool.connection(timeout=self._timeout) as conn:
                return await store.run_queue_stats(conn)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # Called on the metrics server's thread, never on the event loop.
        try:
            future = asyncio.run_coroutine_threadsafe(self._read(), self._loop)
            rows = {row["run_type"]: row for row in future.result(self._timeout + 1)}
        except Exception as exc:
            log.warning("queue metrics unavailable: %s", describe_exception(exc))
            return
        age = GaugeMetricFamily(
            "runsvc_queue_oldest_age_seconds",
            "Age of the oldest queued run (0 when none is queued).",
            labels=["run_type"],
        )
        queued = GaugeMetricFamily("runsvc_runs_queued", "Runs queued.", labels=["run_type"])
        running = GaugeMetricFamily("runsvc_runs_running", "Runs running.", labels=["run_type"])
        for run_type in RunType:
            row = rows.get(run_type.value, {})
            age.add_metric([run_type.value], float(row.get("oldest_queued_seconds", 0.0)))
            queued.add_metric([run_type.value], float(row.get("queued", 0)))
            running.add_metric([run_type.value], float(row.get("running", 0)))
        yield from (age, queued, running)

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # not read at registration: no query before the first scrape
