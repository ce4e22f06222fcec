"""The gateway and the Python client reach a real `runsvc serve` over TLS
and mutual TLS when given a CA (and a client certificate); without the
right certificate they fail cleanly: 503 from the gateway, Unavailable from
the client, within their deadlines."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from tenantpilot.runs.v1 import runs_pb2

from runsvc_client import TLS, RunsClient, Unavailable
from tests.gateway.conftest import start_gateway
from tests.support.seeding import seed_tenant
from tests.tls.conftest import tls_env


@pytest.fixture
def mtls_stack(make_stack, pki):
    stack = make_stack(**tls_env(pki, mutual=True))
    stack.start_server()
    stack.start_worker()
    return stack


def client_tls(pki, *, with_cert: bool = True) -> TLS:
    if not with_cert:
        return TLS(ca=pki.ca.read_bytes())
    return TLS(ca=pki.ca.read_bytes(), cert=pki.client_cert.read_bytes(),
               key=pki.client_key.read_bytes())  # fmt: skip


def test_python_client_runs_a_run_over_mutual_tls(mtls_stack, pki):
    tenant = seed_tenant(mtls_stack.database_url)
    with RunsClient(mtls_stack.target, token=mtls_stack.token, tls=client_tls(pki)) as client:
        run = client.start_run(tenant=tenant.external_id, run_type="snapshot_capture").run
        states = list(client.watch_run(tenant=tenant.external_id, run_type=run.type, run_id=run.id))
    assert states[-1].status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert states[-1].counts.succeeded == len(tenant.policy_ids)


def test_python_client_without_a_client_certificate_is_refused(mtls_stack, pki):
    tenant = seed_tenant(mtls_stack.database_url)
    with RunsClient(
        mtls_stack.target, token=mtls_stack.token, tls=client_tls(pki, with_cert=False)
    ) as client:
        began = time.monotonic()
        with pytest.raises(Unavailable):
            client.get_run(
                tenant=tenant.external_id,
                run_type="snapshot_capture",
                run_id="00000000-0000-0000-0000-000000000000",
                timeout=5,
            )
        assert time.monotonic() - began < 6


def test_gateway_reaches_the_server_over_mutual_tls(mtls_stack, pki, log_dir):
    tenant = seed_tenant(mtls_stack.database_url)
    gateway = start_gateway(
        mtls_stack.target, log_dir,
        "--grpc-ca", str(pki.ca), "--grpc-cert", str(pki.client_cert),
        "--grpc-key", str(pki.client_key),
        stack=mtls_stack,
    )  # fmt: skip
    try:
        with gateway.client() as http:
            assert http.get("/readyz").json() == {"ready": True}
            created = http.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
            assert created.status_code == 201, created.text
            run = created.json()["run"]
            fetched = http.get(f"/admin/t/{tenant.external_id}/runs/snapshot_capture/{run['id']}")
            assert fetched.status_code == 200 and fetched.json()["id"] == run["id"]
    finally:
        gateway.process.stop()


def test_gateway_without_a_client_certificate_answers_503(mtls_stack, pki, log_dir):
    tenant = seed_tenant(mtls_stack.database_url)
    gateway = start_gateway(mtls_stack.target, log_dir, "--grpc-ca", str(pki.ca), stack=mtls_stack)
    try:
        with gateway.client() as http:
            assert http.get("/readyz").json() == {"ready": False}
            refused = http.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "UNAVAILABLE"
    finally:
        gateway.process.stop()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grpc-cert", "c.pem", "--grpc-key", "k.pem"], "need --grpc-ca"),
        (["--grpc-ca", "/etc/hostname", "--grpc-cert", "c.pem"], "both --grpc-cert and"),
        (["--grpc-ca", "/nonexistent.pem"], "cannot read /nonexistent.pem"),
    ],
)
def test_gateway_rejects_incomplete_tls_flags(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "runsvc_gateway", "--http-addr", "127.0.0.1:0", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
