"""`runsvc serve` with TLS and mutual TLS: plaintext clients and clients
without a certificate the server trusts are refused; proper clients work."""

from __future__ import annotations

import os
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.processes import ServiceProcess, runsvc
from tests.support.runs import get, start
from tests.support.seeding import seed_tenant
from tests.tls.conftest import tls_env


def refused(stub, tenant: str) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        start(stub, tenant, "snapshot_capture", timeout=5)
    return error.value.code()


def health(channel: grpc.Channel) -> int:
    return (
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    )


def test_tls_server_refuses_plaintext_and_serves_tls_clients(make_stack, pki):
    stack = make_stack(**tls_env(pki, mutual=False))
    stack.start_server()
    assert "(TLS)" in stack.server.output()
    tenant = seed_tenant(stack.database_url)

    assert refused(stack.stub(), tenant.external_id) == grpc.StatusCode.UNAVAILABLE  # plaintext
    with pytest.raises(grpc.RpcError):
        health(stack.channel())

    stub = stack.stub(credentials=pki.client_credentials(with_cert=False))
    run = start(stub, tenant.external_id, "snapshot_capture").run
    assert get(stub, run).id == run.id
    # TLS does not replace the token.
    anonymous = stack.stub(token=None, credentials=pki.client_credentials(with_cert=False))
    assert refused(anonymous, tenant.external_id) == grpc.StatusCode.UNAUTHENTICATED


def test_mutual_tls_refuses_clients_without_a_trusted_certificate(make_stack, pki):
    stack = make_stack(**tls_env(pki, mutual=True))
    stack.start_server()
    assert "(mutual TLS)" in stack.server.output()
    tenant = seed_tenant(stack.database_url)

    for credentials in (
        None,  # plaintext
        pki.client_credentials(with_cert=False),  # TLS, no client certificate
        pki.client_credentials(rogue=True),  # a certificate from a CA it does not trust
    ):
        stub = stack.stub(credentials=credentials)
        assert refused(stub, tenant.external_id) == grpc.StatusCode.UNAVAILABLE
        channel = stack.channel(credentials)
        with pytest.raises(grpc.RpcError):
            health(channel)  # refused at the handshake: even health is out of reach

    good = pki.client_credentials()
    assert health(stack.channel(good)) == health_pb2.HealthCheckResponse.SERVING
    stub = stack.stub(credentials=good)
    run = start(stub, tenant.external_id, "snapshot_capture").run
    assert get(stub, run).id == run.id


def test_serve_flags_take_tls_files(make_stack, pki, log_dir):
    stack = make_stack()
    server = ServiceProcess(
        "server-tls-flags",
        runsvc(
            "serve", "--grpc-addr", "127.0.0.1:0",
            "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
            "--tls-client-ca", str(pki.ca),
        ),
        stack.env,
        log_dir,
    )  # fmt: skip
    try:
        server.wait_for(r"listening on \S+:\d+ \(mutual TLS\)")
    finally:
        server.stop()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tls-cert", "/nonexistent.pem"], "needs both a certificate and a key"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "cannot be read"),
        (["--tls-client-ca", "/etc/hostname"], "needs a server certificate"),
    ],
)
def test_serve_rejects_incomplete_tls_settings(args, message, database_url):
    env = {**os.environ, "RUNSVC_DATABASE_URL": database_url}
    result = subprocess.run(
        runsvc("serve", "--grpc-addr", "127.0.0.1:0", *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
