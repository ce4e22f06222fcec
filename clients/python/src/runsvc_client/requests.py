"""Request messages from keyword arguments, shared by both clients."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from tenantpilot.runs.v1 import runs_pb2


def start_run_request(
    tenant: str,
    run_type: str,
    *,
    target_object_id: str | None = None,
    payload_hash: str | None = None,
    item_ids: Iterable[str] | None = None,
) -> runs_pb2.StartRunRequest:
    """`item_ids=None` means the run type's default set; `[]` means no items."""
    options = runs_pb2.RunStartRequest()
    if target_object_id is not None:
        options.target_object_id = target_object_id
    if payload_hash is not None:
        options.payload_hash = payload_hash
    if item_ids is not None:
        options.item_ids.SetInParent()
        options.item_ids.values.extend(item_ids)
    return runs_pb2.StartRunRequest(tenant_external_id=tenant, run_type=run_type, options=options)


def get_run_request(tenant: str, run_type: str, run_id: str) -> runs_pb2.GetRunRequest:
    return runs_pb2.GetRunRequest(tenant_external_id=tenant, run_type=run_type, run_id=run_id)


def watch_run_request(
    tenant: str, run_type: str, run_id: str, after_version: int | None = None
) -> runs_pb2.WatchRunRequest:
    request = runs_pb2.WatchRunRequest(tenant_external_id=tenant, run_type=run_type, run_id=run_id)
    if after_version is not None:
        request.after_version = after_version
    return request


TERMINAL_STATUSES = frozenset(
    {runs_pb2.RUN_STATUS_SUCCEEDED, runs_pb2.RUN_STATUS_PARTIAL, runs_pb2.RUN_STATUS_FAILED}
)


def is_terminal(run: runs_pb2.RunRecord) -> bool:
    """True for succeeded, partial and failed."""
    return run.status in TERMINAL_STATUSES


def _enum(value: int | str, prefix: str, enum: type) -> int:
    """An enum value from its number or its short name ("running", "failed")."""
    if isinstance(value, str):
        return enum.Value(f"{prefix}{value.upper()}")
    return value


def list_runs_request(
    tenant: str,
    *,
    run_types: Iterable[str] = (),
    statuses: Iterable[int | str] = (),
    target_object_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    page_size: int = 0,
    page_token: str = "",
) -> runs_pb2.ListRunsRequest:
    request = runs_pb2.ListRunsRequest(
        tenant_external_id=tenant,
        run_types=list(run_types),
        statuses=[_enum(s, "RUN_STATUS_", runs_pb2.RunStatus) for s in statuses],
        page_size=page_size,
        page_token=page_token,
    )
    if target_object_id is not None:
        request.target_object_id = target_object_id
    if created_after is not None:
        request.created_after.FromDatetime(created_after)
    if created_before is not None:
        request.created_before.FromDatetime(created_before)
    return request


def list_run_items_request(
    tenant: str,
    run_type: str,
    run_id: str,
    *,
    outcomes: Iterable[int | str] = (),
    page_size: int = 0,
    page_token: str = "",
) -> runs_pb2.ListRunItemsRequest:
    return runs_pb2.ListRunItemsRequest(
        tenant_external_id=tenant,
        run_type=run_type,
        run_id=run_id,
        outcomes=[_enum(o, "ITEM_OUTCOME_", runs_pb2.ItemOutcome) for o in outcomes],
        page_size=page_size,
        page_token=page_token,
    )
