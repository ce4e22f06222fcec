"""backup_set_add_policies: snapshot each policy and add it to the set."""

from __future__ import annotations

from collections.abc import Iterator

from psycopg import Connection

from runsvc import safe_errors
from runsvc.handlers.base import ItemResult, RunContext, RunError, RunHandler
from runsvc.handlers.snapshot_capture import Fetched, capture, fetch_policies
from runsvc.model import RunType
from runsvc.store import domain


def check_backup_set(ctx: RunContext, conn: Connection) -> str:
    backup_set_id = ctx.require_target()
    if not domain.backup_set_exists(conn, ctx.tenant_id, backup_set_id):
        raise RunError(safe_errors.TARGET_NOT_FOUND, {"targetObjectId": backup_set_id})
    return backup_set_id


class BackupSetAddPolicies(RunHandler):
    run_type = RunType.BACKUP_SET_ADD_POLICIES

    def check(self, ctx: RunContext, conn: Connection) -> None:
        check_backup_set(ctx, conn)

    def default_items(self, ctx: RunContext) -> Iterator[list[str]]:
        # Adding "everything" to a backup set is never implied.
        raise RunError(safe_errors.ITEMS_REQUIRED, {"field": "itemIds"})

    def fetch(self, ctx: RunContext, item_ids: list[str]) -> Fetched:
        return fetch_policies(ctx, item_ids)

    def record(
        self, ctx: RunContext, conn: Connection, item_ids: list[str], fetched: Fetched
    ) -> list[ItemResult]:
        snapshots = capture(ctx, conn, item_ids, fetched)
        backup_items = domain.backup_item_upsert_many(
            conn,
            ctx.tenant_id,
            ctx.require_target(),
            [(policy_id, snapshot.id) for policy_id, snapshot in snapshots.items()],
        )
        results = []
        for item_id in item_ids:
            failed = fetched.policies[item_id]
            if isinstance(failed, ItemResult):
                results.append(failed)
            else:
                results.append(
                    ItemResult.ok(
                        backupItemId=str(backup_items[item_id]),
                        snapshotId=str(snapshots[item_id].id),
                    )
                )
        return results
