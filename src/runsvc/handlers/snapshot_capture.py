"""snapshot_capture: store an immutable snapshot of each live policy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from psycopg import Connection

from runsvc import safe_errors
from runsvc.handlers.base import ItemResult, RunContext, RunHandler
from runsvc.model import LivePolicy, RunType
from runsvc.source.port import ItemFailure
from runsvc.store import domain


@dataclass(frozen=True, slots=True)
class Fetched:
    """Per policy id: the policy and its payload hash, or why it failed."""

    policies: dict[str, tuple[LivePolicy, str] | ItemResult]


def fetch_policies(ctx: RunContext, policy_ids: list[str]) -> Fetched:
    """The live policies of the ids, hashed (the CPU work stays out of the
    batch transaction); a missing one fails with POLICY_NOT_FOUND."""
    found: dict[str, tuple[LivePolicy, str] | ItemResult] = {}
    for policy_id, result in ctx.source.get(policy_ids).items():
        if isinstance(result, ItemFailure):
            found[policy_id] = ItemResult.failed(result.code)
        elif result is None:
            found[policy_id] = ItemResult.failed(safe_errors.POLICY_NOT_FOUND)
        else:
            found[policy_id] = (result, domain.payload_hash(result.payload))
    return Fetched(found)


def capture(
    ctx: RunContext, conn: Connection, item_ids: list[str], fetched: Fetched
) -> dict[str, domain.Snapshot]:
    """One statement: the snapshots of the batch's fetched policies."""
    policies = [p for i in item_ids if isinstance(p := fetched.policies[i], tuple)]
    return domain.policy_snapshot_capture_many(conn, ctx.tenant_id, policies, run_id=ctx.run_id)


class SnapshotCapture(RunHandler):
    run_type = RunType.SNAPSHOT_CAPTURE

    # targetObjectId is an optional scope label: it only separates runs for
    # dedupe. Items default to every live policy of the tenant.
    def default_items(self, ctx: RunContext) -> Iterator[list[str]]:
        cursor = None
        while True:
            page = ctx.source.list_page(cursor)
            yield page.ids
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def fetch(self, ctx: RunContext, item_ids: list[str]) -> Fetched:
        return fetch_policies(ctx, item_ids)

    def record(
        self, ctx: RunContext, conn: Connection, item_ids: list[str], fetched: Fetched
    ) -> list[ItemResult]:
        snapshots = capture(ctx, conn, item_ids, fetched)
        results = []
        for item_id in item_ids:
            failed = fetched.policies[item_id]
            if isinstance(failed, ItemResult):
                results.append(failed)
            else:
                snapshot = snapshots[item_id]
                results.append(ItemResult.ok(snapshotId=str(snapshot.id), created=snapshot.created))
        return results
