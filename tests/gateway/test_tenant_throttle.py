"""A run shows when Microsoft Graph throttles its tenant, and until when:
the pause a worker records reaches GetRun, WatchRun (a new version wakes
the watchers) and the gateway's JSON and SSE as `tenantThrottledUntil`."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool
from tenantpilot.runs.v1 import runs_pb2

from runsvc.source.graph.pacing import Pacer
from runsvc.source.graph.settings import Budget
from runsvc.tenants import add_tenant
from tests.gateway.contract_check import assert_record
from tests.gateway.sse import events
from tests.support.runs import get, start
from tests.support.waiting import wait_until


def staged_running_run(idle_stack, stub) -> tuple[runs_pb2.RunRecord, str]:
    """A run of a Graph tenant, claimed as a worker would claim it (the idle
    stack has no worker)."""
    tenant, entra = f"graph-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    add_tenant(idle_stack.database_url, tenant, entra)
    run = start(stub, tenant, "snapshot_capture").run
    with psycopg.connect(idle_stack.database_url, autocommit=True) as conn:
        conn.execute(
            """UPDATE runs SET status = 'running', started_at = now(), lease_owner = 'test',
                   lease_expires_at = now() + interval '1 hour', version = version + 1
               WHERE id = %s""",
            (run.id,),
        )
    return get(stub, run), entra


def finish(idle_stack, run: runs_pb2.RunRecord) -> None:
    with psycopg.connect(idle_stack.database_url, autocommit=True) as conn:
        conn.execute(
            """UPDATE runs SET status = 'succeeded', finished_at = now(), lease_owner = NULL,
                   lease_expires_at = NULL, version = version + 1 WHERE id = %s""",
            (run.id,),
        )


def test_a_pause_shows_on_the_run_over_grpc_and_http(idle_stack, idle_gateway):
    stub = idle_stack.stub()
    run, entra = staged_running_run(idle_stack, stub)
    assert not run.HasField("tenant_throttled_until")
    seen: list[runs_pb2.RunRecord] = []
    stream = stub.WatchRun(
        runs_pb2.WatchRunRequest(
            tenant_external_id=run.tenant_external_id, run_type=run.type, run_id=run.id,
            after_version=run.version,
        ),
        timeout=30,
    )  # fmt: skip
    watching = threading.Thread(target=lambda: seen.extend(r.run for r in stream), daemon=True)
    watching.start()

    with ConnectionPool(idle_stack.database_url, min_size=1, kwargs={"autocommit": True}) as pool:
        pacer = Pacer(pool, Budget())
        pacer.take(entra, requests=1)
        left = pacer.pause(entra, retry_after=30)
    assert 29 < left <= 30

    throttled = get(stub, run)
    until = throttled.tenant_throttled_until.ToDatetime(tzinfo=UTC)
    assert 28 < (until - datetime.now(UTC)).total_seconds() <= 30
    wait_until(
        lambda: any(r.HasField("tenant_throttled_until") for r in seen),
        timeout=10,
        what="the watcher never saw the pause",
    )

    with idle_gateway.client() as http:
        path = f"/admin/t/{run.tenant_external_id}/runs/{run.type}/{run.id}"
        record = http.get(path).json()
        assert_record(record)
        assert record["tenantThrottledUntil"] == throttled.tenant_throttled_until.ToJsonString()
        with http.stream("GET", path + "/watch", timeout=10) as response:
            first = next(events(response))
            assert json.loads(first.data)["tenantThrottledUntil"] == record["tenantThrottledUntil"]

    finish(idle_stack, run)
    watching.join(10)
    done = get(stub, run)
    assert not done.HasField("tenant_throttled_until")  # a finished run is no longer held up
