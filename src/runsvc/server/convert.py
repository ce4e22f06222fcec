"""Domain run <-> protobuf RunRecord."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from tenantpilot.runs.v1 import runs_pb2

from runsvc.model import Run, RunStatus

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


def run_to_proto(run: Run, now: datetime | None = None) -> runs_pb2.RunRecord:
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
    # Only a pause still in force: one that has passed is no news.
    until = run.throttled_until
    if until is not None and not run.status.terminal and until > (now or datetime.now(UTC)):
        record.tenant_throttled_until.CopyFrom(_timestamp(until))
    if run.safe_error is not None:
        context = Struct()
        context.update(run.safe_error.context)
        record.safe_error.CopyFrom(runs_pb2.SafeError(code=run.safe_error.code, context=context))
    return record
