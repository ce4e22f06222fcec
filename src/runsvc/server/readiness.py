"""Honest readiness: the run service answers SERVING in gRPC health only
while Postgres does. A probe every few seconds flips it to NOT_SERVING soon
after the database goes away and back to SERVING once it answers again, with
no restart. The overall service ("") stays SERVING while the process lives
(liveness); probes of readiness ask for the run service by name."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
import psycopg_pool
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer
from psycopg_pool import AsyncConnectionPool

from runsvc.observe.metrics import server as metrics
from runsvc.redact import describe_exception
from runsvc.store import runs as store

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Readiness:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        health: HealthServicer,
        service: str,
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self._pool = pool
        self._health = health
        self._service = service
        self._interval = interval
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self.ready: bool | None = None

    async def start(self) -> None:
        await self.check()  # the first answer is already honest
        self._task = asyncio.create_task(self._loop(), name="readiness")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def check(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                async with self._pool.connection(timeout=self._timeout) as conn:
                    await store.database_ping(conn)
            ready, why = True, ""
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError, TimeoutError) as exc:
            ready, why = False, describe_exception(exc)
        if ready != self.ready:
            if ready:
                log.info("database reachable: %s is SERVING", self._service)
            else:
                log.warning("database unreachable, %s is NOT_SERVING: %s", self._service, why)
            await self._health.set(self._service, SERVING if ready else NOT_SERVING)
            metrics.database_reachable.set(1 if ready else 0)
            self.ready = ready
        return ready
