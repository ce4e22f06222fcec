"""backup_set_add_policies: snapshot each policy and add it to the set."""

from __future__ import annotations

from runsvc.handlers.base import ItemError, ItemResult, RunContext, RunError, RunHandler
from runsvc.model import RunType
from runsvc.store import domain


class BackupSetAddPolicies(RunHandler):
    run_type = RunType.BACKUP_SET_ADD_POLICIES

    def prepare(self, ctx: RunContext) -> None:
        backup_set_id = ctx.require_target()
        if not domain.backup_set_exists(ctx.conn, ctx.tenant_id, backup_set_id):
            raise RunError("TARGET_NOT_FOUND", {"targetObjectId": backup_set_id})

    def default_items(self, ctx: RunContext) -> list[str]:
        # Adding "everything" to a backup set is never implied.
        raise RunError("ITEMS_REQUIRED", {"field": "itemIds"})

    def process(self, ctx: RunContext, item_id: str) -> ItemResult:
        policy = ctx.source.get_policy(ctx.tenant, item_id)
        if policy is None:
            raise ItemError("POLICY_NOT_FOUND")
        snapshot_id, _ = domain.policy_snapshot_capture(
            ctx.conn, ctx.tenant_id, policy, run_id=ctx.run_id
        )
        backup_item_id = domain.backup_item_upsert(
            ctx.conn, ctx.tenant_id, ctx.require_target(), policy.policy_id, snapshot_id
        )
        return ItemResult.ok(backupItemId=str(backup_item_id), snapshotId=str(snapshot_id))
