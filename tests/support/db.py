"""Direct looks at the database, for what a user would check there."""

from __future__ import annotations

from typing import Any

import psycopg


def query_one(database_url: str, sql: str, *params: Any) -> tuple:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchone()


def query_all(database_url: str, sql: str, *params: Any) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def count_runs(database_url: str, tenant: str) -> int:
    return query_one(
        database_url, "SELECT count(*) FROM runs WHERE tenant_external_id = %s", tenant
    )[0]


def run_bookkeeping(database_url: str, run_id: str) -> dict:
    """A run's attempts and counts, and its items' outcomes as stored."""
    attempts, total, succeeded, failed = query_one(
        database_url,
        "SELECT attempts, total, succeeded, failed FROM runs WHERE id = %s",
        run_id,
    )
    outcomes = dict(
        query_all(
            database_url,
            "SELECT coalesce(outcome, 'pending'), count(*) FROM run_items WHERE run_id = %s "
            "GROUP BY 1",
            run_id,
        )
    )
    return {
        "attempts": attempts,
        "total": total,
        "succeeded": succeeded,
        "failed": failed,
        "outcomes": outcomes,
    }


def snapshot_count(database_url: str, tenant: str) -> int:
    return query_one(
        database_url,
        "SELECT count(*) FROM policy_snapshots s JOIN tenants t ON t.id = s.tenant_id "
        "WHERE t.external_id = %s",
        tenant,
    )[0]
