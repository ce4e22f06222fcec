"""restore_preview and restore_execute: compare, and write back, the
snapshots of a backup set's items against the live policies."""

from __future__ import annotations

import uuid
from typing import Any

from runsvc.handlers.base import ItemError, ItemResult, RunContext, RunError, RunHandler
from runsvc.model import RunType
from runsvc.source.port import SourceRejected
from runsvc.store import domain
from runsvc.store.domain import BackupItem


def changed_keys(snapshot: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Top-level keys whose value differs, or that only one side has."""
    return sorted(
        k
        for k in snapshot.keys() | live.keys()
        if snapshot.get(k) != live.get(k) or (k in snapshot) != (k in live)
    )


class _BackupSetHandler(RunHandler):
    def prepare(self, ctx: RunContext) -> None:
        backup_set_id = ctx.require_target()
        if not domain.backup_set_exists(ctx.conn, ctx.tenant_id, backup_set_id):
            raise RunError("TARGET_NOT_FOUND", {"targetObjectId": backup_set_id})

    def default_items(self, ctx: RunContext) -> list[str]:
        return domain.backup_item_ids(ctx.conn, ctx.tenant_id, ctx.require_target())

    def load_item(self, ctx: RunContext, item_id: str) -> BackupItem:
        try:
            backup_item_id = uuid.UUID(item_id)
        except ValueError:
            raise ItemError("ITEM_NOT_FOUND") from None
        item = domain.backup_item_get(ctx.conn, ctx.tenant_id, ctx.require_target(), backup_item_id)
        if item is None:
            raise ItemError("ITEM_NOT_FOUND")
        return item


class RestorePreview(_BackupSetHandler):
    run_type = RunType.RESTORE_PREVIEW

    def process(self, ctx: RunContext, item_id: str) -> ItemResult:
        item = self.load_item(ctx, item_id)
        live = ctx.source.get_policy(ctx.tenant, item.policy.policy_id)
        if live is None:
            action, keys = "create", sorted(item.policy.payload)
        else:
            keys = changed_keys(item.policy.payload, live.payload)
            action = "update" if keys else "unchanged"
        domain.restore_preview_record(ctx.conn, ctx.run_id, item, action=action, changed_keys=keys)
        return ItemResult.ok(policyId=item.policy.policy_id, action=action, changedKeys=keys)


class RestoreExecute(_BackupSetHandler):
    run_type = RunType.RESTORE_EXECUTE

    def process(self, ctx: RunContext, item_id: str) -> ItemResult:
        item = self.load_item(ctx, item_id)
        live = ctx.source.get_policy(ctx.tenant, item.policy.policy_id)
        if live is not None and live.payload == item.policy.payload:
            outcome = "unchanged"
        else:
            try:
                ctx.source.put_policy(ctx.tenant, item.policy)
            except SourceRejected as rejected:
                domain.restore_result_record(
                    ctx.conn, ctx.run_id, item, outcome="rejected", error_code=rejected.code
                )
                return ItemResult.failed(rejected.code, policyId=item.policy.policy_id)
            outcome = "created" if live is None else "updated"
        domain.restore_result_record(ctx.conn, ctx.run_id, item, outcome=outcome)
        return ItemResult.ok(policyId=item.policy.policy_id, outcome=outcome)
