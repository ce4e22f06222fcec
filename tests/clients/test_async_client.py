"""runsvc_client.AsyncRunsClient (grpc.aio) against the real stack."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from tenantpilot.runs.v1 import runs_pb2

from runsvc_client import (
    AsyncRunsClient,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    Unavailable,
    is_terminal,
)
from tests.clients.fake_server import Script, scripted_server
from tests.clients.test_python_client import free_port


def test_async_start_watch_and_get(stack, tenant):
    async def scenario() -> tuple[runs_pb2.StartRunResponse, list, runs_pb2.RunRecord]:
        async with AsyncRunsClient(stack.target, token=stack.token) as client:
            started = await client.start_run(
                tenant=tenant.external_id,
                run_type="snapshot_capture",
                target_object_id="async",
                item_ids=tenant.policy_ids[:3],
            )
            run = started.run
            states = [
                state
                async for state in client.watch_run(
                    tenant=tenant.external_id, run_type=run.type, run_id=run.id
                )
            ]
            got = await client.get_run(tenant=tenant.external_id, run_type=run.type, run_id=run.id)
            return started, states, got

    started, states, got = asyncio.run(scenario())
    assert not started.reused and started.run.counts.total == 3
    assert is_terminal(states[-1]) and states[-1].status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert got == states[-1]


def test_async_errors_are_typed(idle_stack, tenant):
    async def scenario() -> None:
        async with AsyncRunsClient(idle_stack.target, token=idle_stack.token) as client:
            with pytest.raises(InvalidArgument) as bad:
                await client.start_run(
                    tenant=tenant.external_id, run_type="snapshot_capture", item_ids=[""]
                )
            assert bad.value.field == "options.item_ids[0]"
            assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
            tid = tenant.external_id
            started = await client.start_run(
                tenant=tid, run_type="restore_preview", target_object_id="bs"
            )
            run = started.run
            with pytest.raises(NotFound):
                await client.get_run(tenant=tid, run_type="snapshot_capture", run_id=run.id)
            with pytest.raises(DeadlineExceeded):
                async for _ in client.watch_run(
                    tenant=tenant.external_id, run_type=run.type, run_id=run.id, timeout=0.5
                ):
                    pass

    asyncio.run(scenario())


def test_async_dead_server_is_unavailable_within_the_deadline():
    async def scenario() -> float:
        async with AsyncRunsClient(f"127.0.0.1:{free_port()}", default_timeout=2) as client:
            began = time.monotonic()
            with pytest.raises((Unavailable, DeadlineExceeded)):
                await client.get_run(tenant="t", run_type="snapshot_capture", run_id="r")
            return time.monotonic() - began

    assert asyncio.run(scenario()) < 3.5


def test_async_retries_and_token():
    script = Script(unavailable_first=2)

    async def scenario() -> runs_pb2.RunRecord:
        async with AsyncRunsClient(target, token="tok") as client:
            return await client.get_run(tenant="t", run_type="snapshot_capture", run_id="r9")

    with scripted_server(script) as target:
        assert asyncio.run(scenario()).id == "r9"
    assert script.calls == {"GetRun": 3}
    assert {m["authorization"] for m in script.metadata} == {"Bearer tok"}


def test_async_broken_watch_resumes():
    script = Script(watch_breaks=1)

    async def scenario() -> list[int]:
        async with AsyncRunsClient(target) as client:
            return [s.version async for s in client.watch_run(tenant="t", run_type="x", run_id="r")]

    with scripted_server(script) as target:
        assert asyncio.run(scenario()) == [1, 2]
    assert script.watch_after_versions == [None, 1]


def test_async_get_caller(stack):
    async def scenario() -> runs_pb2.GetCallerResponse:
        async with AsyncRunsClient(stack.target, token=stack.token) as client:
            return await client.get_caller()

    caller = asyncio.run(scenario())
    assert caller.role == runs_pb2.CALLER_ROLE_OPERATOR and caller.all_tenants
