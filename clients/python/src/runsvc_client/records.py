"""The service's messages as the admin HTTP contract's JSON (camelCase,
lowercase status, RFC 3339 UTC timestamps, nulls for unset nullable
fields): what the REST gateway answers and `runsvc runs --json` prints."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from tenantpilot.runs.v1 import runs_pb2

STATUS = {
    runs_pb2.RUN_STATUS_QUEUED: "queued",
    runs_pb2.RUN_STATUS_RUNNING: "running",
    runs_pb2.RUN_STATUS_SUCCEEDED: "succeeded",
    runs_pb2.RUN_STATUS_FAILED: "failed",
    runs_pb2.RUN_STATUS_PARTIAL: "partial",
}
TERMINAL = {"succeeded", "failed", "partial"}


def _timestamp(stamp: Timestamp) -> str:
    return stamp.ToJsonString()  # RFC 3339, UTC, "Z"


def _whole_numbers(value: Any) -> Any:
    """Struct numbers are doubles; a count of 3 reads better as 3 than 3.0."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def run_record(run: runs_pb2.RunRecord) -> dict[str, Any]:
    safe_error = None
    if run.HasField("safe_error"):
        safe_error = {
            "code": run.safe_error.code,
            "context": _whole_numbers(MessageToDict(run.safe_error.context)),
        }
    record: dict[str, Any] = {
        "id": run.id,
        "tenantExternalId": run.tenant_external_id,
        "type": run.type,
        # The server never sends UNSPECIFIED; should it, the KeyError is a 500.
        "status": STATUS[run.status],
        "createdAt": _timestamp(run.created_at),
        "startedAt": _timestamp(run.started_at) if run.HasField("started_at") else None,
        "finishedAt": _timestamp(run.finished_at) if run.HasField("finished_at") else None,
        "counts": {
            "total": run.counts.total,
            "succeeded": run.counts.succeeded,
            "failed": run.counts.failed,
        },
        "safeError": safe_error,
        # Extension properties (the gateway's operators.openapi.yaml: RunExtensions).
        "retryOfRunId": run.retry_of_run_id if run.HasField("retry_of_run_id") else None,
        "cancelRequestedAt": (
            _timestamp(run.cancel_requested_at) if run.HasField("cancel_requested_at") else None
        ),
    }
    # An extension of the contract, present only while Microsoft Graph
    # throttles the run's tenant: when its calls may go out again.
    if run.HasField("tenant_throttled_until"):
        record["tenantThrottledUntil"] = _timestamp(run.tenant_throttled_until)
    return record


def start_response(
    response: runs_pb2.StartRunResponse | runs_pb2.RetryRunResponse,
) -> dict[str, Any]:
    return {"reused": response.reused, "run": run_record(response.run)}


# -- the operators' routes --

OUTCOME = {
    runs_pb2.ITEM_OUTCOME_PENDING: "pending",
    runs_pb2.ITEM_OUTCOME_SUCCEEDED: "succeeded",
    runs_pb2.ITEM_OUTCOME_FAILED: "failed",
}


def run_list(response: runs_pb2.ListRunsResponse) -> dict[str, Any]:
    return {
        "runs": [run_record(run) for run in response.runs],
        "nextPageToken": response.next_page_token,
    }


def run_item(item: runs_pb2.RunItem) -> dict[str, Any]:
    return {
        "itemId": item.item_id,
        "position": item.position,
        "outcome": OUTCOME[item.outcome],
        "errorCode": item.error_code if item.HasField("error_code") else None,
        "finishedAt": _timestamp(item.finished_at) if item.HasField("finished_at") else None,
        "detail": _whole_numbers(MessageToDict(item.detail)) if item.HasField("detail") else None,
    }


def run_item_list(response: runs_pb2.ListRunItemsResponse) -> dict[str, Any]:
    return {
        "items": [run_item(item) for item in response.items],
        "nextPageToken": response.next_page_token,
    }


def is_terminal(run: runs_pb2.RunRecord) -> bool:
    return STATUS.get(run.status) in TERMINAL


ROLE = {
    runs_pb2.CALLER_ROLE_VIEWER: "viewer",
    runs_pb2.CALLER_ROLE_OPERATOR: "operator",
}


def caller(response: runs_pb2.GetCallerResponse) -> dict[str, Any]:
    return {
        "name": response.token_name,
        "role": ROLE[response.role],
        "allTenants": response.all_tenants,
        "tenants": list(response.tenants),
    }
