"""Typed errors: every failed call raises a RunsError subclass chosen by the
gRPC status code, never a raw grpc.RpcError."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


class RunsError(Exception):
    """A call to runsvc failed; `code` is the gRPC status code, `message` the
    server's words (for INVALID_ARGUMENT: `field: description; ...`)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(RunsError):
    """The request was rejected; `violations` name the fields (nothing was written)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(message, code=code)
        self.violations = violations

    @property
    def field(self) -> str | None:
        """The first invalid field, for example `options.item_ids[3]`."""
        return self.violations[0].field if self.violations else None


class NotFound(RunsError):
    code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(RunsError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(RunsError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(RunsError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(RunsError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(RunsError):
    """The server could not be reached (or said to retry), after the retries."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(RunsError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(RunsError):
    code = grpc.StatusCode.CANCELLED


class Internal(RunsError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[RunsError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        Unauthenticated,
        PermissionDenied,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Cancelled,
        Internal,
    )
}


def _violations(error: grpc.RpcError) -> tuple[FieldViolation, ...]:
    """Field violations from the google.rpc.BadRequest in the status details
    (read with grpcio-status)."""
    if not hasattr(error, "trailing_metadata"):
        return ()
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:  # details that contradict the call's code or message
        return ()
    found: list[FieldViolation] = []
    for detail in status.details if status is not None else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found += [FieldViolation(v.field, v.description) for v in bad_request.field_violations]
    return tuple(found)


def from_rpc_error(error: grpc.RpcError) -> RunsError:
    """The typed error for a failed call (sync or asyncio)."""
    code_of = getattr(error, "code", None)
    details_of = getattr(error, "details", None)
    code = (code_of() if code_of else None) or grpc.StatusCode.UNKNOWN
    message = (details_of() if details_of else None) or code.name.lower()
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(message, violations=_violations(error))
    cls = _BY_CODE.get(code)
    if cls is None:
        return RunsError(message, code=code)
    return cls(message)


#: Tries in a row to reopen a broken watch that deliver nothing, and the first
#: pause between them (doubling).
MAX_IDLE_RESUMES = 3
RESUME_BACKOFF = 0.2


def resume_delay(error: RunsError, delivered: bool, idle: int, deadline: float) -> float | None:
    """Seconds to wait before reopening a WatchRun stream that failed with
    `error`, or None to raise it: only UNAVAILABLE, only once the watch has
    delivered states (so a dead server still fails at once), at most
    MAX_IDLE_RESUMES reopened streams in a row that delivered nothing (`idle`,
    with backoff), and never past the deadline."""
    if not isinstance(error, Unavailable) or not delivered or idle > MAX_IDLE_RESUMES:
        return None
    delay = RESUME_BACKOFF * 2 ** (idle - 1) if idle else 0.0
    if time.monotonic() + delay >= deadline:
        return None
    return delay
