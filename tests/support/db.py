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
