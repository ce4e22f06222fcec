"""restore_preview and restore_execute: compare, and write back, the
snapshots of a backup set's items against the live policies."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from psycopg import Connection

from runsvc import safe_errors
from runsvc.handlers.backup_set_add_policies import check_backup_set
from runsvc.handlers.base import ItemResult, RunContext, RunHandler
from runsvc.model import LivePolicy, RunType
from runsvc.source.port import ItemFailure
from runsvc.store import domain
from runsvc.store.domain import BackupItem, PreviewRow, ResultRow

# Item ids per page of a backup set's default work list.
PAGE_SIZE = 5000


def changed_keys(snapshot: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Top-level keys whose value differs, or that only one side has."""
    return sorted(
        k
        for k in snapshot.keys() | live.keys()
        if snapshot.get(k) != live.get(k) or (k in snapshot) != (k in live)
    )


@dataclass(slots=True)
class Compared:
    """Per item id: the backup item and its live policy, or why it failed."""

    items: dict[str, BackupItem] = field(default_factory=dict)
    live: dict[str, LivePolicy | None] = field(default_factory=dict)
    failed: dict[str, ItemResult] = field(default_factory=dict)


class _BackupSetHandler(RunHandler):
    def check(self, ctx: RunContext, conn: Connection) -> None:
        check_backup_set(ctx, conn)

    def default_items(self, ctx: RunContext) -> Iterator[list[str]]:
        cursor = None
        while True:
            with ctx.connection() as conn:
                ids, cursor = domain.backup_item_ids_page(
                    conn, ctx.tenant_id, ctx.require_target(), after=cursor, limit=PAGE_SIZE
                )
            yield ids
            if cursor is None:
                return

    def compare(self, ctx: RunContext, item_ids: list[str]) -> Compared:
        """The batch's backup items (one query) and their live policies (one
        source call); an id that is not an item of the set fails."""
        compared = Compared()
        wanted: dict[uuid.UUID, str] = {}
        for item_id in item_ids:
            try:
                wanted[uuid.UUID(item_id)] = item_id
            except ValueError:
                compared.failed[item_id] = ItemResult.failed(safe_errors.ITEM_NOT_FOUND)
        with ctx.connection() as conn:
            found = domain.backup_items_get_many(
                conn, ctx.tenant_id, ctx.require_target(), list(wanted)
            )
        for key, item_id in wanted.items():
            if key in found:
                compared.items[item_id] = found[key]
            else:
                compared.failed[item_id] = ItemResult.failed(safe_errors.ITEM_NOT_FOUND)
        by_policy = {item.policy.policy_id: item_id for item_id, item in compared.items.items()}
        for policy_id, live in ctx.source.get(list(by_policy)).items():
            item_id = by_policy[policy_id]
            if isinstance(live, ItemFailure):
                compared.failed[item_id] = ItemResult.failed(live.code)
                del compared.items[item_id]
            else:
                compared.live[item_id] = live
        return compared


Row = TypeVar("Row")


def item_results(
    item_ids: list[str],
    rows: dict[str, Row],
    failed: dict[str, ItemResult],
    result_of: Callable[[Row], ItemResult],
) -> list[ItemResult]:
    """Each item's result, in order: from its row, or the failure found
    while comparing it (no row was written for it)."""
    return [result_of(rows[i]) if i in rows else failed[i] for i in item_ids]


@dataclass(slots=True)
class Preview:
    compared: Compared
    rows: dict[str, PreviewRow]


class RestorePreview(_BackupSetHandler):
    run_type = RunType.RESTORE_PREVIEW

    def fetch(self, ctx: RunContext, item_ids: list[str]) -> Preview:
        compared = self.compare(ctx, item_ids)
        rows = {}
        for item_id, item in compared.items.items():
            live = compared.live[item_id]
            if live is None:
                action, keys = "create", sorted(item.policy.payload)
            else:
                keys = changed_keys(item.policy.payload, live.payload)
                action = "update" if keys else "unchanged"
            rows[item_id] = PreviewRow(item, action, keys)
        return Preview(compared, rows)

    def record(
        self, ctx: RunContext, conn: Connection, item_ids: list[str], fetched: Preview
    ) -> list[ItemResult]:
        rows = [fetched.rows[i] for i in item_ids if i in fetched.rows]
        domain.restore_preview_record_many(conn, ctx.run_id, rows)
        return item_results(
            item_ids,
            fetched.rows,
            fetched.compared.failed,
            lambda row: ItemResult.ok(
                policyId=row.item.policy.policy_id,
                action=row.action,
                changedKeys=row.changed_keys,
            ),
        )


@dataclass(slots=True)
class Restore:
    compared: Compared
    rows: dict[str, ResultRow]


class RestoreExecute(_BackupSetHandler):
    run_type = RunType.RESTORE_EXECUTE
    writes_to_source = True

    def fetch(self, ctx: RunContext, item_ids: list[str]) -> Restore:
        """Writes the changed policies back (one source call) before the
        batch is recorded: a write may happen twice after a crash, which
        the port's idempotent writes make harmless."""
        compared = self.compare(ctx, item_ids)
        rows: dict[str, ResultRow] = {}
        to_write: dict[str, str] = {}  # policy id -> item id
        for item_id, item in compared.items.items():
            live = compared.live[item_id]
            if live is not None and live.payload == item.policy.payload:
                rows[item_id] = ResultRow(item, "unchanged")
            else:
                to_write[item.policy.policy_id] = item_id
        policies = [compared.items[item_id].policy for item_id in to_write.values()]
        for policy_id, written in ctx.source.put(policies).items():
            item_id = to_write[policy_id]
            item = compared.items[item_id]
            if isinstance(written, ItemFailure):
                if written.transient:  # never answered: nothing to record but the failure
                    compared.failed[item_id] = ItemResult.failed(written.code)
                    continue
                rows[item_id] = ResultRow(item, "rejected", written.code)
            else:
                created = compared.live[item_id] is None
                rows[item_id] = ResultRow(item, "created" if created else "updated")
        return Restore(compared, rows)

    def record(
        self, ctx: RunContext, conn: Connection, item_ids: list[str], fetched: Restore
    ) -> list[ItemResult]:
        rows = [fetched.rows[i] for i in item_ids if i in fetched.rows]
        domain.restore_result_record_many(conn, ctx.run_id, rows)

        def result_of(row: ResultRow) -> ItemResult:
            policy_id = row.item.policy.policy_id
            if row.outcome == "rejected":
                return ItemResult.failed(row.error_code or "", policyId=policy_id)
            return ItemResult.ok(policyId=policy_id, outcome=row.outcome)

        return item_results(item_ids, fetched.rows, fetched.compared.failed, result_of)
