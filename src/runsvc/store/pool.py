"""Postgres connections that notice a dead peer: TCP keepalives for every
connection, and a pool check that costs no round trip."""

from __future__ import annotations

import psycopg
from psycopg import pq

# libpq TCP keepalives: a peer that vanished (no FIN, no RST) is noticed by
# the kernel within ~25 s instead of the default two hours.
KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


async def check_alive(conn: psycopg.AsyncConnection) -> None:
    """The pool's check on every checkout, without a round trip: reads what
    the server may have sent meanwhile (a restart or pg_terminate_backend
    sends a FATAL error and closes the socket) and raises if the connection
    is gone, so the pool replaces it instead of handing a dead one to a call."""
    pgconn = conn.pgconn
    # The first read takes the server's FATAL message, the second meets the
    # closed socket (and raises OperationalError); on a live idle connection
    # both return at once.
    pgconn.consume_input()
    pgconn.consume_input()
    if pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError("the connection was closed by the server")
