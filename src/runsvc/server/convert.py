"""Domain run <-> protobuf RunRecord, and the operators' messages (items,
filters)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from tenantpilot.runs.v1 import runs_pb2

from runsvc.model import Run, RunStatus
from runsvc.store.runs import RunItem

STATUS_TO_PROTO = {
    RunStatus.QUEUED: runs_pb2.RUN_STATUS_QUEUED,
    RunStatus.RUNNING: runs_pb2.RUN_STATUS_RUNNING,
    RunStatus.SUCCEEDED: runs_pb2.RUN_STATUS_SUCCEEDED,
    RunStatus.PARTIAL: runs_pb2.RUN_STATUS_PARTIAL,
    RunStatus.FAILED: runs_pb2.RUN_STATUS_FAILED,
}


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def run_to_proto(run: Run) -> runs_pb2.RunRecord:
    record = runs_pb2.RunRecord(
        id=str(run.id),
        tenant_external_id=run.tenant_external_id,
        type=run.run_type.value,
        status=STATUS_TO_PROTO[run.status],
        created_at=_timestamp(run.created_at),
        counts=runs_pb2.RunCounts(total=run.total, succeeded=run.succeeded, failed=run.failed),
        version=run.version,
    )
    if run.started_at is not None:
        record.started_at.CopyFrom(_timestamp(run.started_at))
    if run.finished_at is not None:
        record.finished_at.CopyFrom(_timestamp(run.finished_at))
    if run.safe_error is not None:
        context = Struct()
        context.update(run.safe_error.context)
        record.safe_error.CopyFrom(runs_pb2.SafeError(code=run.safe_error.code, context=context))
    if run.retry_of_run_id is not None:
        record.retry_of_run_id = str(run.retry_of_run_id)
    if run.cancel_requested_at is not None:
        record.cancel_requested_at.CopyFrom(_timestamp(run.cancel_requested_at))
    return record


STATUS_FROM_PROTO = {proto: status for status, proto in STATUS_TO_PROTO.items()}

OUTCOME_TO_PROTO = {
    "pending": runs_pb2.ITEM_OUTCOME_PENDING,
    "succeeded": runs_pb2.ITEM_OUTCOME_SUCCEEDED,
    "failed": runs_pb2.ITEM_OUTCOME_FAILED,
}
OUTCOME_FROM_PROTO = {proto: outcome for outcome, proto in OUTCOME_TO_PROTO.items()}


def item_to_proto(item: RunItem) -> runs_pb2.RunItem:
    message = runs_pb2.RunItem(
        item_id=item.item_id, position=item.position, outcome=OUTCOME_TO_PROTO[item.outcome]
    )
    if item.error_code is not None:
        message.error_code = item.error_code
    if item.finished_at is not None:
        message.finished_at.CopyFrom(_timestamp(item.finished_at))
    if item.detail is not None:
        message.detail.update(item.detail)
    return message
