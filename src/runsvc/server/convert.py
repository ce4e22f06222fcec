"""Domain run <-> protobuf RunRecord, and the operators' messages (items,
filters)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from tenantpilot.runs.v1 import runs_pb2

from runsvc.model import RunState, RunStatus
from runsvc.store.runs import RunItem

STATUS_TO_PROTO = {
    RunStatus.QUEUED: runs_pb2.RUN_STATUS_QUEUED,
    RunStatus.RUNNING: runs_pb2.RUN_STATUS_RUNNING,
    RunStatus.SUCCEEDED: runs_pb2.RUN_STATUS_SUCCEEDED,
    RunStatus.PARTIAL: runs_pb2.RUN_STATUS_PARTIAL,
    RunStatus.FAILED: runs_pb2.RUN_STATUS_FAILED,
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _set_time(field: Timestamp, value: datetime) -> None:
    """The field set in place from an aware datetime, in whole integers (no
    float, any date): a third of Timestamp.FromDatetime's cost plus the
    copy, on a path every GetRun and every watcher's message takes."""
    since = value - _EPOCH
    field.seconds = since.days * 86_400 + since.seconds
    field.nanos = since.microseconds * 1000


def run_to_proto(run: RunState, now: datetime | None = None) -> runs_pb2.RunRecord:
    record = runs_pb2.RunRecord(
        id=str(run.id),
        tenant_external_id=run.tenant_external_id,
        type=run.run_type.value,
        status=STATUS_TO_PROTO[run.status],
        version=run.version,
    )
    counts = record.counts
    counts.total, counts.succeeded, counts.failed = run.total, run.succeeded, run.failed
    _set_time(record.created_at, run.created_at)
    if run.started_at is not None:
        _set_time(record.started_at, run.started_at)
    if run.finished_at is not None:
        _set_time(record.finished_at, run.finished_at)
    # Only a pause still in force: one that has passed is no news.
    until = run.throttled_until
    if until is not None and not run.status.terminal and until > (now or datetime.now(UTC)):
        _set_time(record.tenant_throttled_until, until)
    if run.safe_error is not None:
        safe_error = record.safe_error
        safe_error.code = run.safe_error.code
        safe_error.context.SetInParent()  # `{}` when empty: the contract's field is there
        safe_error.context.update(run.safe_error.context)
    if run.retry_of_run_id is not None:
        record.retry_of_run_id = str(run.retry_of_run_id)
    if run.cancel_requested_at is not None:
        _set_time(record.cancel_requested_at, run.cancel_requested_at)
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
        _set_time(message.finished_at, item.finished_at)
    if item.detail is not None:
        message.detail.update(item.detail)
    return message
