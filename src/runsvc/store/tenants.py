"""Operations on tenants as operators manage them (`runsvc tenant`, the seed
file): each one's Entra tenant for the Graph source, listing, removal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import Connection
from psycopg.rows import dict_row

from runsvc.store.queries import QUERIES

_GRAPH_ID_INDEX = "tenants_graph_tenant_id_once"


class GraphTenantTaken(Exception):
    """Another runsvc tenant is already this Entra tenant."""


@dataclass(frozen=True, slots=True)
class TenantRow:
    external_id: str
    graph_tenant_id: str | None
    created_at: datetime
    active_runs: int
    backup_sets: int
    snapshots: int


@dataclass(frozen=True, slots=True)
class TenantUsage:
    id: int
    active_runs: int
    backup_sets: int
    snapshots: int


def tenant_graph_get(conn: Connection, tenant: str) -> tuple[int, str | None] | None:
    """(tenant id, its Entra tenant or None), or None for no such tenant."""
    row = conn.execute(QUERIES["tenant_graph_get"], {"tenant": tenant}).fetchone()
    return (row[0], row[1]) if row else None


def tenant_graph_set(conn: Connection, tenant: str, graph_tenant_id: str | None) -> bool:
    """Creates or updates the tenant; True when it is new."""
    try:
        with conn.transaction():  # a savepoint when the caller has a transaction
            row = conn.execute(
                QUERIES["tenant_graph_set"],
                {"tenant": tenant, "graph_tenant_id": graph_tenant_id},
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == _GRAPH_ID_INDEX:
            raise GraphTenantTaken(graph_tenant_id) from None
        raise
    return bool(row[1])


def tenant_list(conn: Connection) -> list[TenantRow]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QUERIES["tenant_list"])
        return [TenantRow(**row) for row in cur.fetchall()]


def tenant_usage(conn: Connection, tenant: str) -> TenantUsage | None:
    """What the tenant holds; locks its row for the caller's transaction."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QUERIES["tenant_usage"], {"tenant": tenant})
        row = cur.fetchone()
    return TenantUsage(**row) if row else None


def tenant_delete(conn: Connection, tenant_id: int) -> None:
    conn.execute(QUERIES["tenant_delete"], {"tenant_id": tenant_id})
