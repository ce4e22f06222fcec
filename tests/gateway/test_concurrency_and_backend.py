"""Concurrent identical starts over HTTP, and a gRPC backend that is down:
503 within a deadline, never a hang."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid

from tenantpilot.runs.v1 import runs_pb2

from tests.gateway.contract_check import assert_contract_response, assert_error
from tests.support.processes import free_port
from tests.support.scripted_grpc import scripted_start_run

START = "/t/{tenantExternalId}/runs/{runType}"


def test_fifty_concurrent_identical_posts_make_one_run(idle_gateway, tenant):
    body = {"targetObjectId": "scope-a", "payloadHash": uuid.uuid4().hex}
    url = f"/admin/t/{tenant.external_id}/runs/snapshot_capture"

    async def post_all():
        async with idle_gateway.async_client() as client:
            return await asyncio.gather(*(client.post(url, json=body) for _ in range(50)))

    responses = asyncio.run(post_all())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [201], statuses
    bodies = [assert_contract_response(r, START, "post") for r in responses]
    assert len({b["run"]["id"] for b in bodies}) == 1
    assert [b["reused"] for b in bodies].count(False) == 1


def test_backend_never_up_gives_503_quickly_and_not_ready(make_gateway, tenant):
    gateway = make_gateway(f"127.0.0.1:{free_port()}")  # nothing listens there
    with gateway.client() as client:
        for _ in range(3):
            began = time.monotonic()
            response = client.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
            elapsed = time.monotonic() - began
            error = assert_error(response, 503, "UNAVAILABLE")
            assert "127.0.0.1" not in error["message"]  # no internals
            assert elapsed < 3, elapsed
        assert_error(client.get(f"/admin/t/x/runs/snapshot_capture/{uuid.uuid4()}"), 503)
        assert_error(client.get(f"/admin/t/x/runs/snapshot_capture/{uuid.uuid4()}/watch"), 503)
        began = time.monotonic()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        assert time.monotonic() - began < 3
        assert client.get("/healthz").status_code == 200  # the process itself is alive


def test_backend_that_goes_down_gives_503_quickly(make_stack, make_gateway, tenant):
    stack = make_stack()
    stack.start_server()
    gateway = make_gateway(stack.target, stack=stack)
    with gateway.client() as client:
        url = f"/admin/t/{tenant.external_id}/runs/snapshot_capture"
        assert client.post(url, json={"payloadHash": uuid.uuid4().hex}).status_code == 201
        assert client.get("/readyz").json() == {"ready": True}
        stack.server.stop()
        began = time.monotonic()
        assert_error(client.post(url), 503, "UNAVAILABLE")
        assert time.monotonic() - began < 5
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"ready": False}


def test_backend_that_never_answers_hits_the_deadline(make_gateway, tenant):
    # A socket that takes connections and says nothing: no HTTP/2 handshake.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        gateway = make_gateway(target, "--call-timeout", "1")
        with gateway.client() as client:
            began = time.monotonic()
            response = client.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
            elapsed = time.monotonic() - began
            # gRPC gives up on the handshake (UNAVAILABLE, 503) or the call's
            # deadline ends it (DEADLINE_EXCEEDED, 504, SPEC "Errors and limits").
            print(f"silent backend: {response.status_code} after {elapsed:.2f}s")
            assert response.status_code in (503, 504)
            assert_error(response, response.status_code)
            assert elapsed < 3, elapsed
            assert client.get("/readyz").json() == {"ready": False}


def test_backend_that_hangs_is_cut_by_the_deadline(make_gateway, tenant):
    # A gRPC server whose StartRun never answers in time.
    release = threading.Event()

    def hang(request, context):
        release.wait(10)
        return runs_pb2.StartRunResponse()

    with scripted_start_run(hang) as target:
        try:
            gateway = make_gateway(target, "--call-timeout", "1")
            with gateway.client() as client:
                began = time.monotonic()
                response = client.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
                elapsed = time.monotonic() - began
                # SPEC "Errors and limits": DEADLINE_EXCEEDED is 504.
                assert_error(response, 504, "DEADLINE_EXCEEDED")
                assert 0.9 < elapsed < 3, elapsed
        finally:
            release.set()
