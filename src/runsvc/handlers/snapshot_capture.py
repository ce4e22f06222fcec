"""snapshot_capture: store an immutable snapshot of each live policy."""

from __future__ import annotations

from runsvc.handlers.base import ItemError, ItemResult, RunContext, RunHandler
from runsvc.model import RunType
from runsvc.store import domain


class SnapshotCapture(RunHandler):
    run_type = RunType.SNAPSHOT_CAPTURE

    # targetObjectId is an optional scope label: it only separates runs for
    # dedupe. Items default to every live policy of the tenant.
    def default_items(self, ctx: RunContext) -> list[str]:
        return ctx.source.list_policy_ids(ctx.tenant)

    def process(self, ctx: RunContext, item_id: str) -> ItemResult:
        policy = ctx.source.get_policy(ctx.tenant, item_id)
        if policy is None:
            raise ItemError("POLICY_NOT_FOUND")
        snapshot_id, created = domain.policy_snapshot_capture(
            ctx.conn, ctx.tenant_id, policy, run_id=ctx.run_id
        )
        return ItemResult.ok(snapshotId=str(snapshot_id), created=created)
