"""Operations on the domain tables: tenants, snapshots, backup sets and items,
restore previews and results. Each takes the caller's connection; the ones
the run types use are set-based (one statement per batch)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
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


def live_policy_upsert_many(
    conn: Connection, tenant_id: int, policies: Sequence[LivePolicy]
) -> None:
    conn.execute(
        QUERIES["live_policy_upsert_by_tenant_id"],
        {
            "tenant_id": tenant_id,
            "policy_ids": [p.policy_id for p in policies],
            "policy_types": [p.policy_type for p in policies],
            "display_names": [p.display_name for p in policies],
            "payloads": Jsonb([p.payload for p in policies]),
        },
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: uuid.UUID
    created: bool


def policy_snapshot_capture_many(
    conn: Connection,
    tenant_id: int,
    policies: Sequence[tuple[LivePolicy, str]],
    *,
    run_id: uuid.UUID | None,
) -> dict[str, Snapshot]:
    """Snapshots of (policy, payload hash) pairs, by policy id; an unchanged
    payload creates nothing and returns the snapshot that holds it."""
    if not policies:
        return {}
    rows = conn.execute(
        QUERIES["policy_snapshot_capture_many"],
        {
            "tenant_id": tenant_id,
            "run_id": run_id,
            "policy_ids": [p.policy_id for p, _ in policies],
            "policy_types": [p.policy_type for p, _ in policies],
            "display_names": [p.display_name for p, _ in policies],
            "payloads": Jsonb([p.payload for p, _ in policies]),
            "payload_hashes": [h for _, h in policies],
        },
    ).fetchall()
    return {policy_id: Snapshot(snapshot_id, created) for policy_id, snapshot_id, created in rows}


def backup_set_exists(conn: Connection, tenant_id: int, backup_set_id: str) -> bool:
    params = {"tenant_id": tenant_id, "backup_set_id": backup_set_id}
    return conn.execute(QUERIES["backup_set_exists"], params).fetchone() is not None


def backup_set_upsert(conn: Connection, tenant_id: int, backup_set_id: str, name: str) -> None:
    conn.execute(
        QUERIES["backup_set_upsert"],
        {"tenant_id": tenant_id, "backup_set_id": backup_set_id, "name": name},
    )


def backup_item_upsert_many(
    conn: Connection,
    tenant_id: int,
    backup_set_id: str,
    snapshots: Sequence[tuple[str, uuid.UUID]],
) -> dict[str, uuid.UUID]:
    """Puts (policy id, snapshot id) pairs in the set; backup item id by policy id."""
    if not snapshots:
        return {}
    rows = conn.execute(
        QUERIES["backup_item_upsert_many"],
        {
            "tenant_id": tenant_id,
            "backup_set_id": backup_set_id,
            "policy_ids": [policy_id for policy_id, _ in snapshots],
            "snapshot_ids": [snapshot_id for _, snapshot_id in snapshots],
        },
    ).fetchall()
    return dict(rows)


# Where a page of a backup set's item ids ends: (added_at, policy_id).
BackupItemCursor = tuple[datetime, str]


def backup_item_ids_page(
    conn: Connection,
    tenant_id: int,
    backup_set_id: str,
    *,
    after: BackupItemCursor | None,
    limit: int,
) -> tuple[list[str], BackupItemCursor | None]:
    """A page of the set's item ids in the order they were added, and the
    cursor of the next page (None after the last)."""
    rows = conn.execute(
        QUERIES["backup_item_ids_page"],
        {
            "tenant_id": tenant_id,
            "backup_set_id": backup_set_id,
            "after_added": after[0] if after else "-infinity",
            "after_policy": after[1] if after else "",
            "limit": limit,
        },
    ).fetchall()
    cursor = (rows[-1][1], rows[-1][2]) if len(rows) == limit else None
    return [item_id for item_id, _, _ in rows], cursor


@dataclass(frozen=True, slots=True)
class BackupItem:
    id: uuid.UUID
    policy: LivePolicy  # the policy as its snapshot holds it


def backup_items_get_many(
    conn: Connection, tenant_id: int, backup_set_id: str, backup_item_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, BackupItem]:
    """The set's items among the ids, with the payloads of their snapshots."""
    rows = conn.execute(
        QUERIES["backup_items_get_many"],
        {
            "tenant_id": tenant_id,
            "backup_set_id": backup_set_id,
            "backup_item_ids": list(backup_item_ids),
        },
    ).fetchall()
    return {
        item_id: BackupItem(item_id, LivePolicy(policy_id, policy_type, display_name, payload))
        for item_id, policy_id, policy_type, display_name, payload in rows
    }


@dataclass(frozen=True, slots=True)
class PreviewRow:
    item: BackupItem
    action: str
    changed_keys: list[str]


def restore_preview_record_many(
    conn: Connection, run_id: uuid.UUID, rows: Sequence[PreviewRow]
) -> None:
    if not rows:
        return
    conn.execute(
        QUERIES["restore_preview_record_many"],
        {
            "run_id": run_id,
            "backup_item_ids": [r.item.id for r in rows],
            "policy_ids": [r.item.policy.policy_id for r in rows],
            "actions": [r.action for r in rows],
            # text[][] cannot be ragged: the keys travel as JSON.
            "changed_keys": Jsonb([r.changed_keys for r in rows]),
        },
    )


@dataclass(frozen=True, slots=True)
class ResultRow:
    item: BackupItem
    outcome: str
    error_code: str | None = None


def restore_result_record_many(
    conn: Connection, run_id: uuid.UUID, rows: Sequence[ResultRow]
) -> None:
    if not rows:
        return
    conn.execute(
        QUERIES["restore_result_record_many"],
        {
            "run_id": run_id,
            "backup_item_ids": [r.item.id for r in rows],
            "policy_ids": [r.item.policy.policy_id for r in rows],
            "outcomes": [r.outcome for r in rows],
            "error_codes": [r.error_code for r in rows],
        },
    )
