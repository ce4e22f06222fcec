"""Postgres connections that notice a dead peer: TCP keepalives for every
connection, and a pool check that costs no round trip."""

from __future__ import annotations

import asyncio

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool

# libpq TCP keepalives: a peer that vanished (no FIN, no RST) is noticed by
# the kernel within ~25 s instead of the default two hours.
KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def _check_alive(conn: psycopg.AsyncConnection) -> None:
    """Without a round trip: reads what the server may have sent meanwhile
    (a restart or pg_terminate_backend sends a FATAL error and closes the
    socket) and raises OperationalError if the connection is gone."""
    pgconn = conn.pgconn
    # The first read takes the server's FATAL message, the second meets the
    # closed socket (and raises); on a live idle connection both return at once.
    pgconn.consume_input()
    pgconn.consume_input()
    if pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError("the connection was closed by the server")


class LivenessCheck:
    """The pool's check on every checkout, so that no call is handed a dead
    connection. One dead connection means the others are likely dead too (a
    database restart, connections killed): it then has the pool check all its
    idle connections at once, in the background, so that the next checkouts
    do not meet them one by one (the pool waits a growing delay after each
    failed check)."""

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool | None = None
        self._sweep: asyncio.Task[None] | None = None

    async def __call__(self, conn: psycopg.AsyncConnection) -> None:
        try:
            _check_alive(conn)
        except psycopg.OperationalError:
            self.sweep()
            raise

    def sweep(self) -> None:
        if self.pool is not None and (self._sweep is None or self._sweep.done()):
            self._sweep = asyncio.create_task(self.pool.check(), name="pool-sweep")
