"""Python client for runsvc (tenantpilot.runs.v1.RunService).

    from runsvc_client import RunsClient

    with RunsClient("localhost:50051", token=token) as client:
        run = client.start_run(tenant="contoso", run_type="snapshot_capture").run
        for state in client.watch_run(tenant="contoso", run_type=run.type, run_id=run.id):
            print(state.status, state.counts)

The generated messages and stubs live in `tenantpilot.runs.v1` (runs_pb2,
runs_pb2_grpc), in this same distribution.
"""

from runsvc_client.aio import AsyncRunsClient
from runsvc_client.channel import DEFAULT_TIMEOUT, DEFAULT_WATCH_TIMEOUT, TLS, RetryPolicy
from runsvc_client.client import RunsClient
from runsvc_client.errors import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RunsError,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)
from runsvc_client.requests import TERMINAL_STATUSES, is_terminal

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_WATCH_TIMEOUT",
    "TERMINAL_STATUSES",
    "TLS",
    "AsyncRunsClient",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "RunsClient",
    "RunsError",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
    "is_terminal",
]
