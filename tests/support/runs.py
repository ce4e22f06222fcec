"""Small helpers over the generated stubs, as a caller would write them."""

from __future__ import annotations

import time

from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc_client.requests import start_run_request

TERMINAL = {runs_pb2.RUN_STATUS_SUCCEEDED, runs_pb2.RUN_STATUS_PARTIAL, runs_pb2.RUN_STATUS_FAILED}


def start(
    stub: runs_pb2_grpc.RunServiceStub,
    tenant: str,
    run_type: str,
    *,
    target: str | None = None,
    payload_hash: str | None = None,
    item_ids: list[str] | None = None,
    timeout: float = 10,
) -> runs_pb2.StartRunResponse:
    request = start_run_request(
        tenant, run_type, target_object_id=target, payload_hash=payload_hash, item_ids=item_ids
    )
    return stub.StartRun(request, timeout=timeout)


def get(
    stub: runs_pb2_grpc.RunServiceStub, run: runs_pb2.RunRecord, *, timeout: float = 10
) -> runs_pb2.RunRecord:
    return stub.GetRun(
        runs_pb2.GetRunRequest(
            tenant_external_id=run.tenant_external_id, run_type=run.type, run_id=run.id
        ),
        timeout=timeout,
    ).run


def wait_terminal(
    stub: runs_pb2_grpc.RunServiceStub, run: runs_pb2.RunRecord, *, timeout: float = 60
) -> runs_pb2.RunRecord:
    """Polls GetRun (AIP-151: the polling path carries the full state)."""
    deadline = time.monotonic() + timeout
    while True:
        current = get(stub, run)
        if current.status in TERMINAL:
            return current
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run.id} still {runs_pb2.RunStatus.Name(current.status)}")
        time.sleep(0.05)
