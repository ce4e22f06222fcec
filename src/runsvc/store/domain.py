"""Operations on the domain tables: tenants, snapshots, backup sets and items,
restore previews and results. Each takes the caller's connection."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from runsvc.model import LivePolicy
from runsvc.store.queries import QUERIES


def payload_hash(payload: dict[str, Any]) -> str:
    """A stable hash of a payload: canonical JSON (sorted keys), SHA-256."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def tenant_get_id(conn: Connection, tenant: str) -> int | None:
    row = conn.execute(QUERIES["tenant_get_id"], {"tenant": tenant}).fetchone()
    return row[0] if row else None


def tenant_upsert(conn: Connection, tenant: str) -> int:
    return conn.execute(QUERIES["tenant_upsert"], {"tenant": tenant}).fetchone()[0]


def live_policy_upsert(conn: Connection, tenant_id: int, policy: LivePolicy) -> None:
    conn.execute(
        QUERIES["live_policy_upsert"],
        {
            "tenant_id": tenant_id,
            "policy_id": policy.policy_id,
            "policy_type": policy.policy_type,
            "display_name": policy.display_name,
            "payload": Jsonb(policy.payload),
        },
    )


def policy_snapshot_capture(
    conn: Connection, tenant_id: int, policy: LivePolicy, *, run_id: uuid.UUID | None
) -> tuple[uuid.UUID, bool]:
    """Returns (snapshot id, created); an unchanged payload creates nothing."""
    row = conn.execute(
        QUERIES["policy_snapshot_capture"],
        {
            "tenant_id": tenant_id,
            "policy_id": policy.policy_id,
            "policy_type": policy.policy_type,
            "display_name": policy.display_name,
            "payload": Jsonb(policy.payload),
            "payload_hash": payload_hash(policy.payload),
            "run_id": run_id,
        },
    ).fetchone()
    return row[0], row[1]


def backup_set_exists(conn: Connection, tenant_id: int, backup_set_id: str) -> bool:
    params = {"tenant_id": tenant_id, "backup_set_id": backup_set_id}
    return conn.execute(QUERIES["backup_set_exists"], params).fetchone() is not None


def backup_set_upsert(conn: Connection, tenant_id: int, backup_set_id: str, name: str) -> None:
    conn.execute(
        QUERIES["backup_set_upsert"],
        {"tenant_id": tenant_id, "backup_set_id": backup_set_id, "name": name},
    )


def backup_item_upsert(
    conn: Connection, tenant_id: int, backup_set_id: str, policy_id: str, snapshot_id: uuid.UUID
) -> uuid.UUID:
    return conn.execute(
        QUERIES["backup_item_upsert"],
        {
            "tenant_id": tenant_id,
            "backup_set_id": backup_set_id,
            "policy_id": policy_id,
            "snapshot_id": snapshot_id,
        },
    ).fetchone()[0]


def backup_item_ids(conn: Connection, tenant_id: int, backup_set_id: str) -> list[str]:
    rows = conn.execute(
        QUERIES["backup_item_ids"], {"tenant_id": tenant_id, "backup_set_id": backup_set_id}
    ).fetchall()
    return [item_id for (item_id,) in rows]


@dataclass(frozen=True, slots=True)
class BackupItem:
    id: uuid.UUID
    policy: LivePolicy  # the policy as its snapshot holds it


def backup_item_get(
    conn: Connection, tenant_id: int, backup_set_id: str, backup_item_id: uuid.UUID
) -> BackupItem | None:
    row = conn.execute(
        QUERIES["backup_item_get"],
        {"tenant_id": tenant_id, "backup_set_id": backup_set_id, "backup_item_id": backup_item_id},
    ).fetchone()
    if row is None:
        return None
    item_id, policy_id, policy_type, display_name, payload = row
    return BackupItem(item_id, LivePolicy(policy_id, policy_type, display_name, payload))


def restore_preview_record(
    conn: Connection,
    run_id: uuid.UUID,
    item: BackupItem,
    *,
    action: str,
    changed_keys: list[str],
) -> None:
    conn.execute(
        QUERIES["restore_preview_record"],
        {
            "run_id": run_id,
            "backup_item_id": item.id,
            "policy_id": item.policy.policy_id,
            "action": action,
            "changed_keys": changed_keys,
        },
    )


def restore_result_record(
    conn: Connection,
    run_id: uuid.UUID,
    item: BackupItem,
    *,
    outcome: str,
    error_code: str | None = None,
) -> None:
    conn.execute(
        QUERIES["restore_result_record"],
        {
            "run_id": run_id,
            "backup_item_id": item.id,
            "policy_id": item.policy.policy_id,
            "outcome": outcome,
            "error_code": error_code,
        },
    )
