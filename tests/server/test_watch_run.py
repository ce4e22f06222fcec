"""WatchRun per SPEC §5: current state first, one record per change, ends
after the terminal state; resume without repeats; many watchers, one LISTEN."""

from __future__ import annotations

import asyncio
import subprocess
import threading

import grpc
import psycopg
import pytest
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from tests.support.grpcurl import SERVICE, grpcurl_args, parse_stream
from tests.support.runs import start, wait_terminal
from tests.support.seeding import seed_tenant

SCRIPTED = "tests.support.scripted_source:create"


def watch_request(run: runs_pb2.RunRecord, after: int | None = None) -> runs_pb2.WatchRunRequest:
    request = runs_pb2.WatchRunRequest(
        tenant_external_id=run.tenant_external_id, run_type=run.type, run_id=run.id
    )
    if after is not None:
        request.after_version = after
    return request


def test_grpcurl_streams_queued_running_progress_terminal(make_stack):
    # Batches 0.4 s apart: far enough that a loaded machine still shows
    # progress between them (a watcher that lags is handed only the newest).
    stack = make_stack(
        RUNSVC_BATCH_SIZE="2",
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_DELAY="0.2",
    )
    stack.start_server()
    tenant = seed_tenant(stack.database_url, policies=8)
    run = start(stack.stub(), tenant.external_id, "snapshot_capture").run

    watch = subprocess.Popen(
        grpcurl_args(
            stack.target,
            f"{SERVICE}/WatchRun",
            data={
                "tenant_external_id": tenant.external_id,
                "run_type": "snapshot_capture",
                "run_id": run.id,
            },
            token=stack.token,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_line = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in watch.stdout:
            lines.append(line)
            first_line.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # The worker starts only once the stream is open, so "queued" is seen.
    assert first_line.wait(30), "grpcurl printed nothing"
    stack.start_worker()

    assert watch.wait(timeout=60) == 0, watch.stderr.read()  # ends by itself, with OK
    reader.join(timeout=10)
    records = [m["run"] for m in parse_stream("".join(lines))]
    statuses = [r["status"] for r in records]
    assert statuses[0] == "RUN_STATUS_QUEUED"
    assert statuses[-1] == "RUN_STATUS_SUCCEEDED"
    assert "RUN_STATUS_RUNNING" in statuses
    progress = [
        r.get("counts", {}).get("succeeded", 0)
        for r in records
        if r["status"] == "RUN_STATUS_RUNNING"
    ]
    assert any(0 < n < 8 for n in progress), f"no intermediate progress in {progress}"
    assert progress == sorted(progress)
    versions = [int(r["version"]) for r in records]
    assert versions == sorted(set(versions)), "versions must strictly increase"
    assert records[-1]["counts"] == {"total": 8, "succeeded": 8}
    assert "finished_at" in records[-1] and "safe_error" not in records[-1]


def test_resume_with_last_seen_version_sends_no_repeats(stub, tenant):
    run = start(stub, tenant.external_id, "snapshot_capture").run
    final = wait_terminal(stub, run)
    assert final.version > 2

    # Resuming from an old version: only newer states (coalesced to the latest).
    resumed = list(stub.WatchRun(watch_request(run, after=1), timeout=10))
    assert [r.run.version for r in resumed] == [final.version]
    assert resumed[0].run.status == runs_pb2.RUN_STATUS_SUCCEEDED

    # Resuming from the terminal version: nothing to send, the stream ends OK.
    assert list(stub.WatchRun(watch_request(run, after=final.version), timeout=10)) == []

    # A fresh watch of a finished run: its terminal state, then the end.
    fresh = list(stub.WatchRun(watch_request(run), timeout=10))
    assert [r.run.version for r in fresh] == [final.version]


def test_watch_of_unknown_or_foreign_run_is_not_found(stub, tenant):
    run = start(stub, tenant.external_id, "snapshot_capture").run
    other = tenant.external_id + "-other"
    for request in (
        runs_pb2.WatchRunRequest(tenant_external_id=other, run_type=run.type, run_id=run.id),
        runs_pb2.WatchRunRequest(
            tenant_external_id=run.tenant_external_id, run_type="restore_preview", run_id=run.id
        ),
        runs_pb2.WatchRunRequest(
            tenant_external_id=run.tenant_external_id,
            run_type=run.type,
            run_id="00000000-0000-0000-0000-000000000000",
        ),
    ):
        with pytest.raises(grpc.RpcError) as error:
            list(stub.WatchRun(request, timeout=10))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_negative_after_version_is_invalid(stub, tenant):
    run = start(stub, tenant.external_id, "snapshot_capture").run
    with pytest.raises(grpc.RpcError) as error:
        list(stub.WatchRun(watch_request(run, after=-1), timeout=10))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "after_version" in error.value.details()


def test_after_version_newer_than_the_run_is_invalid(stack, tenant):
    # Resuming from a version the run never had would skip the states between.
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    final = wait_terminal(stub, run)
    for after in (final.version + 1, 2**62):
        with pytest.raises(grpc.RpcError) as error:
            list(stub.WatchRun(watch_request(run, after=after), timeout=10))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "after_version" in error.value.details()
    # The current version itself is fine: nothing newer, the stream ends OK.
    request = watch_request(run, after=final.version)
    assert list(stub.WatchRun(request, timeout=10)) == []


def server_connections(database_url: str, pid: int) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE application_name LIKE %s GROUP BY application_name",
            (f"runsvc-%:{pid}",),
        ).fetchall()
    return dict(rows)


def test_two_hundred_watchers_share_one_listen_connection(make_stack):
    stack = make_stack(RUNSVC_TENANT_SOURCE=SCRIPTED, RUNSVC_TEST_SOURCE_DELAY="0.02")
    stack.start_server()
    tenant = seed_tenant(stack.database_url, policies=40)
    run = start(stack.stub(), tenant.external_id, "snapshot_capture").run
    watchers = 200

    async def watch_all() -> list[list[runs_pb2.RunRecord]]:
        async with grpc.aio.insecure_channel(stack.target) as channel:
            stub = runs_pb2_grpc.RunServiceStub(channel)
            calls = [
                stub.WatchRun(watch_request(run), timeout=120, metadata=stack.metadata)
                for _ in range(watchers)
            ]
            # Every stream has its first state before the worker starts.
            firsts = await asyncio.gather(*(call.read() for call in calls))
            assert all(f.run.status == runs_pb2.RUN_STATUS_QUEUED for f in firsts)

            connections = server_connections(stack.database_url, stack.server.pid)
            assert connections.get(f"runsvc-watch-hub:{stack.server.pid}") == 1
            assert sum(connections.values()) <= 21, connections  # the pool, not per watcher

            await asyncio.to_thread(stack.start_worker, threads=2)

            async def rest(call) -> list[runs_pb2.RunRecord]:
                records = []
                while (message := await call.read()) is not grpc.aio.EOF:
                    records.append(message.run)
                return records

            tails = await asyncio.gather(*(rest(call) for call in calls))
            return [[first.run, *tail] for first, tail in zip(firsts, tails, strict=True)]

    streams = asyncio.run(watch_all())
    assert len(streams) == watchers
    for records in streams:
        last = records[-1]
        assert last.status == runs_pb2.RUN_STATUS_SUCCEEDED
        assert (last.counts.total, last.counts.succeeded) == (40, 40)
        assert [r.version for r in records] == sorted({r.version for r in records})
