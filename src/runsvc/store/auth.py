"""Operations on API tokens and audit events.

The server's lookups and audit writes are async and take the caller's
connection (the audit row shares StartRun's transaction); the admin
commands (`runsvc token`, `runsvc audit`, `runsvc dev`) are sync.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row

from runsvc.store.queries import QUERIES


class TokenNameTaken(Exception):
    """An active token already has this name."""


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: int
    name: str
    secret_hash: bytes
    role: str
    all_tenants: bool
    tenants: list[str]
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str
    token_name: str
    tenant_external_id: str
    run_id: uuid.UUID | None = None
    run_type: str | None = None
    reused: bool | None = None


# --- server side (async) ---------------------------------------------------


async def token_get_active_by_key(conn: AsyncConnection, key_id: str) -> TokenRow | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(QUERIES["token_get_active_by_key"], {"key_id": key_id})
        row = await cur.fetchone()
    return TokenRow(**row) if row else None


async def token_touch(conn: AsyncConnection, token_id: int, *, touch_after: float) -> None:
    await conn.execute(QUERIES["token_touch"], {"id": token_id, "touch_after": touch_after})


async def audit_insert(conn: AsyncConnection, event: AuditEvent) -> None:
    await conn.execute(
        QUERIES["audit_insert"],
        {
            "action": event.action,
            "token_name": event.token_name,
            "tenant": event.tenant_external_id,
            "run_id": event.run_id,
            "run_type": event.run_type,
            "reused": event.reused,
        },
    )


# --- admin side (sync) -----------------------------------------------------


def token_insert(
    conn: Connection,
    *,
    name: str,
    key_id: str,
    secret_hash: bytes,
    role: str,
    tenants: list[str] | None,
) -> int:
    params = {
        "name": name,
        "key_id": key_id,
        "secret_hash": secret_hash,
        "role": role,
        "all_tenants": tenants is None,
        "tenants": tenants or [],
    }
    try:
        with conn.transaction():
            row = conn.execute(QUERIES["token_insert"], params).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == "api_tokens_active_name":
            raise TokenNameTaken(name) from None
        raise
    assert row is not None
    return row[0]


def token_get_active_by_key_sync(conn: Connection, key_id: str) -> TokenRow | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QUERIES["token_get_active_by_key"], {"key_id": key_id})
        row = cur.fetchone()
    return TokenRow(**row) if row else None


def token_list(conn: Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QUERIES["token_list"])
        return cur.fetchall()


def token_revoke(conn: Connection, name: str) -> bool:
    return conn.execute(QUERIES["token_revoke"], {"name": name}).fetchone() is not None


def audit_list(conn: Connection, tenant: str, *, limit: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QUERIES["audit_list"], {"tenant": tenant, "limit": limit})
        return cur.fetchall()
