"""Request messages from keyword arguments, shared by both clients."""

from __future__ import annotations

from collections.abc import Iterable

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
