"""Paces each Entra tenant's Graph calls by its budget, shared by every
worker process through Postgres: token buckets that calls take from before
they go out, and the pause that a 429 or 503 puts on the whole tenant.

Each take or pause is one short autocommit statement; no lock is held
while a call waits or while it is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from runsvc.source.graph.settings import Budget
from runsvc.store.queries import QUERIES

# Keep this share of the budget in reserve: a call paced at one instant
# reaches Graph a few milliseconds later, and not all equally late.
HEADROOM = 0.95
# Backoff when Graph throttles without saying for how long.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Buckets:
    """Token buckets that never let more than the budget through in any
    window: burst + rate * window <= budget * HEADROOM."""

    request_capacity: float
    request_rate: float
    write_capacity: float
    write_rate: float

    @classmethod
    def for_budget(cls, budget: Budget) -> Buckets:
        def split(limit: int) -> tuple[float, float]:
            usable = limit * HEADROOM
            burst = usable / 20  # a small burst, so steady pacing gets the rest
            return burst, (usable - burst) / budget.window_seconds

        request_capacity, request_rate = split(budget.requests)
        write_capacity, write_rate = split(budget.writes)
        return cls(request_capacity, request_rate, write_capacity, write_rate)


class Pacer:
    def __init__(self, pool: ConnectionPool, budget: Budget) -> None:
        self._pool = pool
        self._buckets = Buckets.for_budget(budget)
        self._calm_seconds = budget.window_seconds

    def take(self, graph_tenant_id: str, *, requests: int, writes: int = 0) -> float:
        """Reserves the calls; returns the seconds to wait before they go out."""
        b = self._buckets
        with self._pool.connection() as conn:
            (wait,) = conn.execute(
                QUERIES["graph_pacing_take"],
                {
                    "graph_tenant_id": graph_tenant_id,
                    "requests": requests,
                    "writes": writes,
                    "request_capacity": b.request_capacity,
                    "request_rate": b.request_rate,
                    "write_capacity": b.write_capacity,
                    "write_rate": b.write_rate,
                },
            ).fetchone()
        return float(wait)

    def pause(self, graph_tenant_id: str, *, retry_after: float | None) -> float:
        """Graph throttled the tenant: every call to it, in every process,
        waits until the pause has passed. Returns the pause's remaining seconds."""
        with self._pool.connection() as conn:
            row = conn.execute(
                QUERIES["graph_pacing_pause"],
                {
                    "graph_tenant_id": graph_tenant_id,
                    "retry_after": retry_after,
                    "calm_seconds": self._calm_seconds,
                    "backoff_base": BACKOFF_BASE_SECONDS,
                    "backoff_max": BACKOFF_MAX_SECONDS,
                },
            ).fetchone()
        return float(row[1]) if row else 0.0
