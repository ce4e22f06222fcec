"""gRPC status -> HTTP status (SPEC "Errors and limits") and the
Authorization header passed through as gRPC metadata, against a scripted
gRPC RunService on a real socket (the real server's authentication lands
separately; these codes are what it will answer)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from tenantpilot.runs.v1 import runs_pb2

from tests.gateway.contract_check import assert_error
from tests.support.scripted_grpc import scripted_start_run

# Authorization header -> the status the scripted server answers with.
SCRIPT = {
    "Bearer unknown": (grpc.StatusCode.UNAUTHENTICATED, "unknown token"),
    "Bearer viewer": (grpc.StatusCode.PERMISSION_DENIED, "token may not start runs"),
    "Bearer busy": (grpc.StatusCode.RESOURCE_EXHAUSTED, "too many runs"),
    "Bearer state": (grpc.StatusCode.FAILED_PRECONDITION, "run is not active"),
    "Bearer boom": (grpc.StatusCode.INTERNAL, "psycopg.OperationalError at 10.0.0.7"),
    "Bearer odd": (grpc.StatusCode.DATA_LOSS, "secret detail"),
}


@pytest.fixture(scope="module")
def scripted_backend():
    seen: list[dict[str, str]] = []

    def start_run(request, context):
        metadata = dict(context.invocation_metadata())
        seen.append(metadata)
        auth = metadata.get("authorization")
        if auth is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        if auth in SCRIPT:
            context.abort(*SCRIPT[auth])
        return runs_pb2.StartRunResponse(
            reused=False,
            run=runs_pb2.RunRecord(
                id="6f1c1b0e-2f7e-4a4e-9d7a-9d1f1b0e2f7e",
                tenant_external_id=request.tenant_external_id,
                type=request.run_type,
                status=runs_pb2.RUN_STATUS_QUEUED,
                counts=runs_pb2.RunCounts(),
                version=1,
            ),
        )

    with scripted_start_run(start_run) as target:
        yield target, seen


@pytest.mark.parametrize(
    ("authorization", "status", "code", "message"),
    [
        (None, 401, "UNAUTHENTICATED", "missing bearer token"),
        ("Bearer unknown", 401, "UNAUTHENTICATED", "unknown token"),
        ("Bearer viewer", 403, "PERMISSION_DENIED", "token may not start runs"),
        ("Bearer state", 409, "FAILED_PRECONDITION", "run is not active"),
        ("Bearer busy", 429, "RESOURCE_EXHAUSTED", "too many runs"),
        ("Bearer boom", 500, "INTERNAL", "internal error"),
        ("Bearer odd", 500, "INTERNAL", "internal error"),
    ],
)
def test_grpc_status_becomes_http_status(
    scripted_backend, make_gateway, authorization, status, code, message
):
    target, seen = scripted_backend
    gateway = make_gateway(target)
    headers = {"Authorization": authorization} if authorization else {}
    with gateway.client() as client:
        client.headers.pop("Authorization", None)
        response = client.post("/admin/t/contoso/runs/snapshot_capture", headers=headers)
    error = assert_error(response, status, code)
    assert error["message"] == message  # 5xx say nothing of the backend's internals
    assert seen[-1].get("authorization") == authorization
    assert authorization is None or authorization not in gateway.process.output()


def test_authorization_reaches_the_server_unchanged(scripted_backend, make_gateway):
    target, seen = scripted_backend
    gateway = make_gateway(target)
    with gateway.client() as client:
        response = client.post(
            "/admin/t/contoso/runs/snapshot_capture", headers={"Authorization": "Bearer s3cr3t"}
        )
    assert response.status_code == 201, response.text
    assert seen[-1]["authorization"] == "Bearer s3cr3t"
    assert "s3cr3t" not in gateway.process.output()


def test_gateway_imports_no_server_code_and_no_database_driver():
    probe = (
        "import sys, runsvc_gateway.app, runsvc_gateway.cli;"
        "bad = sorted(m for m in sys.modules if m == 'runsvc' or m.startswith("
        "('runsvc.', 'psycopg', 'dramatiq')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_console_script_usage():
    installed = Path(sys.executable).with_name("runsvc-gateway")
    done = subprocess.run([str(installed), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--grpc-target" in done.stdout and "--http-addr" in done.stdout
    script = [sys.executable, "-m", "runsvc_gateway"]
    done = subprocess.run(
        [*script, "--grpc-target", "nowhere", "--http-addr", "127.0.0.1:0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "expected HOST:PORT" in done.stderr
