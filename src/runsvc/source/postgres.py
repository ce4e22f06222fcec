"""The built-in TenantSource: live policies in the live_policies table.

Each call is one set-based statement in its own short transaction on a
pooled connection, as a call to an outside system would be: it never joins
a run's batch transaction. The call's deadline becomes its statement
timeout. Writes are upserts of the whole policy, so writing a batch twice
leaves the table as writing it once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection, errors, sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from runsvc.model import LivePolicy
from runsvc.source.port import (
    WRITTEN,
    Deadline,
    GetResult,
    PolicyIdPage,
    PutResult,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from runsvc.store.queries import QUERIES

# Ids per list page: large enough that listing a million policies takes a
# few hundred calls, small enough that a page is a few hundred kilobytes.
PAGE_SIZE = 5000


class PostgresTenantSource:
    def __init__(self, pool: ConnectionPool, *, page_size: int = PAGE_SIZE) -> None:
        self._pool = pool
        self._page_size = page_size

    @contextmanager
    def _connection(self, deadline: Deadline) -> Iterator[Connection]:
        """A pooled connection in a transaction whose statements end by the deadline."""
        if deadline.expired:
            raise SourceTimeout("deadline passed before the call")
        try:
            with self._pool.connection(timeout=deadline.remaining()) as conn, conn.transaction():
                timeout_ms = max(1, math.ceil(deadline.remaining() * 1000))
                conn.execute(
                    sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout_ms))
                )
                yield conn
        except (PoolTimeout, errors.QueryCanceled):
            raise SourceTimeout("the built-in source did not answer in time") from None
        except psycopg.OperationalError as exc:
            raise SourceUnavailable(type(exc).__name__) from None

    def list_policy_ids(
        self, tenant: str, *, cursor: str | None, deadline: Deadline
    ) -> PolicyIdPage:
        with self._connection(deadline) as conn:
            rows = conn.execute(
                QUERIES["live_policy_page_ids"],
                {"tenant": tenant, "after": cursor or "", "limit": self._page_size},
            ).fetchall()
        ids = [policy_id for (policy_id,) in rows]
        return PolicyIdPage(ids, ids[-1] if len(ids) == self._page_size else None)

    def get_policies(
        self, tenant: str, policy_ids: Sequence[str], *, deadline: Deadline
    ) -> Mapping[str, GetResult]:
        with self._connection(deadline) as conn:
            rows = conn.execute(
                QUERIES["live_policy_get_many"], {"tenant": tenant, "policy_ids": list(policy_ids)}
            ).fetchall()
        found: dict[str, GetResult] = {row[0]: LivePolicy(*row) for row in rows}
        return {policy_id: found.get(policy_id) for policy_id in policy_ids}

    def put_policies(
        self, tenant: str, policies: Sequence[LivePolicy], *, deadline: Deadline
    ) -> Mapping[str, PutResult]:
        # One row per policy id (the last one wins): an upsert may not touch a row twice.
        latest = list({policy.policy_id: policy for policy in policies}.values())
        params: dict[str, Any] = {
            "tenant": tenant,
            "policy_ids": [p.policy_id for p in latest],
            "policy_types": [p.policy_type for p in latest],
            "display_names": [p.display_name for p in latest],
            "payloads": Jsonb([p.payload for p in latest]),
        }
        with self._connection(deadline) as conn:
            written = conn.execute(QUERIES["live_policy_upsert_many"], params).fetchall()
        if latest and not written:
            raise SourceRejected("TENANT_NOT_FOUND")
        return {policy.policy_id: WRITTEN for policy in latest}


def create(pool: ConnectionPool) -> PostgresTenantSource:
    return PostgresTenantSource(pool)
