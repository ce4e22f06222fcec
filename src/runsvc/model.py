"""The run as the whole service sees it: types, statuses and the record."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple


class RunType(enum.StrEnum):
    BACKUP_SET_ADD_POLICIES = "backup_set_add_policies"
    RESTORE_EXECUTE = "restore_execute"
    RESTORE_PREVIEW = "restore_preview"
    SNAPSHOT_CAPTURE = "snapshot_capture"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class LivePolicy:
    """A policy as a TenantSource holds it (see runsvc.source.port)."""

    policy_id: str
    # The kind of policy as the source needs it to address the policy again
    # (a Graph adapter keeps the collection here); stored in snapshots.
    policy_type: str
    display_name: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SafeError:
    """What a caller may learn of a failure: a stable code and small context."""

    code: str
    context: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "context": self.context}


@dataclass(frozen=True, slots=True)
class Run:
    id: uuid.UUID
    tenant_external_id: str
    run_type: RunType
    target_object_id: str | None
    payload_hash: str | None
    # Only the server's queries select it; the worker's never do (up to
    # 10,000 ids), so there it is None whatever the run asked for.
    requested_item_ids: list[str] | None
    status: RunStatus
    total: int
    succeeded: int
    failed: int
    items_resolved: bool
    safe_error: SafeError | None
    version: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    # Operators' extensions: the run this one retries (RetryRun), and when
    # CancelRun asked it to stop.
    retry_of_run_id: uuid.UUID | None = None
    cancel_requested_at: datetime | None = None
    # The request that created the run (observability; None before 0009).
    request_id: str | None = None
    trace_context: dict[str, str] | None = None
    # Until when Graph throttles the run's tenant, as last recorded (it may
    # lie in the past: the pause is over then).
    throttled_until: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Run:
        error = row["safe_error"]
        return cls(
            id=row["id"],
            tenant_external_id=row["tenant_external_id"],
            run_type=RunType(row["run_type"]),
            target_object_id=row["target_object_id"],
            payload_hash=row["payload_hash"],
            requested_item_ids=row.get("requested_item_ids"),
            status=RunStatus(row["status"]),
            total=row["total"],
            succeeded=row["succeeded"],
            failed=row["failed"],
            items_resolved=row["items_resolved"],
            safe_error=SafeError(error["code"], error.get("context") or {}) if error else None,
            version=row["version"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            attempts=row["attempts"],
            retry_of_run_id=row.get("retry_of_run_id"),
            cancel_requested_at=row.get("cancel_requested_at"),
            request_id=row.get("request_id"),
            trace_context=row.get("trace_context"),
            throttled_until=row.get("throttled_until"),
        )


# By value, for the rows the server reads per call (a dict lookup, where
# calling the enum walks its lookup machinery).
_RUN_TYPES = {run_type.value: run_type for run_type in RunType}
_RUN_STATUSES = {status.value: status for status in RunStatus}


class RunState(NamedTuple):
    """What callers see of a run (StartRun's answer, GetRun, WatchRun): the
    status, counts, version and times; never the work list or the lease.
    A named tuple rather than a frozen dataclass: as immutable (the watch
    hub hands one state to every watcher), and built per call in a quarter
    of the time (0.55 µs against 2.06 µs in a warm loop: a frozen
    dataclass sets each of its 15 fields through object.__setattr__)."""

    id: uuid.UUID
    tenant_external_id: str
    run_type: RunType
    status: RunStatus
    total: int
    succeeded: int
    failed: int
    safe_error: SafeError | None
    version: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # Operators' extensions: the run this one retries (RetryRun), and when
    # CancelRun asked it to stop.
    retry_of_run_id: uuid.UUID | None = None
    cancel_requested_at: datetime | None = None
    # Until when Graph throttles the run's tenant, as last recorded (it may
    # lie in the past: the pause is over then).
    throttled_until: datetime | None = None

    @classmethod
    def from_tuple(cls, row: Sequence[Any]) -> RunState:
        """From the columns the server's queries select, in their order."""
        (run_id, tenant, run_type, status, total, succeeded, failed, error, *rest) = row
        return cls(
            run_id,
            tenant,
            _RUN_TYPES[run_type],
            _RUN_STATUSES[status],
            total,
            succeeded,
            failed,
            SafeError(error["code"], error.get("context") or {}) if error else None,
            *rest,
        )
