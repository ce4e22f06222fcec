"""Microsoft Graph as the TenantSource: RUNSVC_TENANT_SOURCE=runsvc.source.graph:create.

client (httpx, $batch, throttling), auth (MSAL client credentials per
tenant), pacing (budgets and pauses shared through Postgres), collections
(what Graph's documentation says of each), source (the port's adapter),
emulator (a Graph of our own for tests, benchmarks and `runsvc dev`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from runsvc.source.graph.source import GraphTenantSource


def create(pool: ConnectionPool) -> GraphTenantSource:
    """The adapter, configured from RUNSVC_GRAPH_* (imported only when used)."""
    from runsvc.source.graph.source import create as create_source

    return create_source(pool)
