"""The built-in TenantSource: live policies in the live_policies table.

Each call is its own short transaction on a pooled connection, as a call to
an outside system would be; it never joins the run's batch transaction.
"""

from __future__ import annotations

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from runsvc.source.port import LivePolicy, SourceRejected
from runsvc.store.queries import QUERIES


class PostgresTenantSource:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def list_policy_ids(self, tenant: str) -> list[str]:
        with self._pool.connection() as conn:
            rows = conn.execute(QUERIES["live_policy_list_ids"], {"tenant": tenant}).fetchall()
        return [policy_id for (policy_id,) in rows]

    def get_policy(self, tenant: str, policy_id: str) -> LivePolicy | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                QUERIES["live_policy_get"], {"tenant": tenant, "policy_id": policy_id}
            ).fetchone()
        return LivePolicy(*row) if row else None

    def put_policy(self, tenant: str, policy: LivePolicy) -> None:
        with self._pool.connection() as conn:
            row = conn.execute(QUERIES["tenant_get_id"], {"tenant": tenant}).fetchone()
            if row is None:
                raise SourceRejected("TENANT_NOT_FOUND")
            conn.execute(
                QUERIES["live_policy_upsert"],
                {
                    "tenant_id": row[0],
                    "policy_id": policy.policy_id,
                    "policy_type": policy.policy_type,
                    "display_name": policy.display_name,
                    "payload": Jsonb(policy.payload),
                },
            )


def create(pool: ConnectionPool) -> PostgresTenantSource:
    return PostgresTenantSource(pool)
