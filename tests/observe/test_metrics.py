"""Each process's /metrics scraped over real HTTP during real runs: the
series move as a user would check them on a dashboard."""

from __future__ import annotations

import threading

import grpc
import pytest
from tenantpilot.runs.v1 import runs_pb2

from tests.observe.conftest import METRICS_ON, server_metrics_url, worker_metrics_url
from tests.support.db import query_one
from tests.support.metrics import scrape, value, wait_for_metric
from tests.support.runs import start, wait_terminal
from tests.support.seeding import seed_tenant

RUN_SERVICE = "tenantpilot.runs.v1.RunService"


def test_a_runs_items_and_its_failed_item_appear_in_the_series(observed_stack):
    stack = observed_stack()
    worker = stack.start_worker(**METRICS_ON)
    server_url, worker_url = server_metrics_url(stack), worker_metrics_url(worker)
    tenant = seed_tenant(stack.database_url, policies=3)
    stub = stack.stub()

    items = [*tenant.policy_ids, "no-such-policy"]
    run = start(stub, tenant.external_id, "snapshot_capture", item_ids=items).run
    assert wait_terminal(stub, run).status == runs_pb2.RUN_STATUS_PARTIAL

    done = wait_for_metric(
        worker_url,
        lambda s: value(s, "runsvc_runs_finished_total", run_type="snapshot_capture",
                        status="partial") == 1,
        what="the partial run finished",
    )  # fmt: skip
    labels = {"run_type": "snapshot_capture"}
    assert value(done, "runsvc_items_total", **labels, outcome="succeeded") == 3
    assert value(done, "runsvc_items_total", **labels, outcome="failed") == 1
    assert value(done, "runsvc_runs_claimed_total", **labels) == 1
    assert value(done, "runsvc_runs_executing", **labels) == 0
    assert value(done, "runsvc_batch_duration_seconds_count", **labels) >= 1
    # Each real TenantSource call, by operation (the port's batched method) and result.
    assert value(done, "runsvc_source_call_seconds_count", operation="get_policies",
                 result="ok") >= 1  # fmt: skip
    # The worker exports its own series only.
    assert not any(name.startswith("grpc_server") for name, _ in done)

    served = scrape(server_url)
    start_labels = {"grpc_service": RUN_SERVICE, "grpc_method": "StartRun", "grpc_type": "unary"}
    assert value(served, "grpc_server_started_total", **start_labels) == 1
    assert value(served, "grpc_server_handled_total", **start_labels, grpc_code="OK") == 1
    assert value(served, "grpc_server_handling_seconds_count", **start_labels) == 1
    get_labels = {**start_labels, "grpc_method": "GetRun"}
    assert value(served, "grpc_server_handled_total", **get_labels, grpc_code="OK") >= 1
    assert value(served, "runsvc_runs_started_total", run_type="snapshot_capture",
                 reused="false") == 1  # fmt: skip
    assert value(served, "runsvc_database_reachable") == 1
    assert value(served, "runsvc_dispatch_failures_total") == 0
    # Bounded labels: no run id, no tenant anywhere.
    for name, labels_of in served | done:
        shown = " ".join(v for _, v in labels_of)
        assert run.id not in shown and tenant.external_id not in shown, name


def test_refused_calls_are_counted_by_code(observed_stack):
    stack = observed_stack()
    server_url = server_metrics_url(stack)
    with pytest.raises(grpc.RpcError) as refused:
        start(stack.stub(token=None), "t-nobody", "snapshot_capture")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as invalid:
        start(stack.stub(), "t-nobody", "no_such_type")
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    served = scrape(server_url)
    labels = {"grpc_service": RUN_SERVICE, "grpc_method": "StartRun", "grpc_type": "unary"}
    assert value(served, "grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED") == 1
    assert value(served, "grpc_server_handled_total", **labels, grpc_code="INVALID_ARGUMENT") == 1
    assert value(served, "grpc_server_started_total", **labels) == 2


def test_queue_lag_rises_while_no_worker_runs_and_falls_after(observed_stack):
    stack = observed_stack()
    server_url = server_metrics_url(stack)
    tenant = seed_tenant(stack.database_url, policies=2)
    stub = stack.stub()
    lag = {"run_type": "snapshot_capture"}
    assert value(scrape(server_url), "runsvc_queue_oldest_age_seconds", **lag) == 0

    run = start(stub, tenant.external_id, "snapshot_capture").run
    first = wait_for_metric(
        server_url, lambda s: value(s, "runsvc_queue_oldest_age_seconds", **lag) > 0
    )
    assert value(first, "runsvc_runs_queued", **lag) == 1
    assert value(first, "runsvc_queue_oldest_age_seconds", run_type="restore_preview") == 0
    earlier = value(first, "runsvc_queue_oldest_age_seconds", **lag)
    wait_for_metric(  # read from the database at each scrape: it keeps rising
        server_url, lambda s: value(s, "runsvc_queue_oldest_age_seconds", **lag) > earlier + 0.2
    )

    stack.start_worker()
    assert wait_terminal(stub, run).status == runs_pb2.RUN_STATUS_SUCCEEDED
    after = scrape(server_url)
    assert value(after, "runsvc_queue_oldest_age_seconds", **lag) == 0
    assert value(after, "runsvc_runs_queued", **lag) == 0
    assert value(after, "runsvc_runs_running", **lag) == 0


def test_worker_processes_add_up_in_one_endpoint(observed_stack):
    """Two worker processes of one thread each: two slow runs at once must be
    in different processes; the one endpoint shows both (multiprocess mode).
    Six runs: one process holds at most two messages (one running, one
    prefetched), so the other gets work while the first is busy."""
    stack = observed_stack(
        RUNSVC_TENANT_SOURCE="tests.support.scripted_source:create",
        RUNSVC_TEST_SOURCE_DELAY="0.4",
        RUNSVC_BATCH_SIZE="1",
    )
    worker = stack.start_worker(processes=2, threads=1, **METRICS_ON)
    worker_url = worker_metrics_url(worker)
    stub = stack.stub()
    tenants = [seed_tenant(stack.database_url, policies=3) for _ in range(6)]
    runs = [start(stub, t.external_id, "snapshot_capture").run for t in tenants]

    labels = {"run_type": "snapshot_capture"}
    wait_for_metric(
        worker_url,
        lambda s: value(s, "runsvc_runs_executing", **labels) == 2,
        what="two runs executing at once, one per process",
    )
    for run in runs:
        assert wait_terminal(stub, run).status == runs_pb2.RUN_STATUS_SUCCEEDED
    done = wait_for_metric(worker_url, lambda s: value(s, "runsvc_runs_executing", **labels) == 0)
    assert value(done, "runsvc_items_total", **labels, outcome="succeeded") == 18
    assert value(done, "runsvc_runs_finished_total", **labels, status="succeeded") == 6
    assert worker.output().count("worker ready") == 2


def test_open_watch_streams_are_counted(observed_stack):
    stack = observed_stack()
    server_url = server_metrics_url(stack)
    tenant = seed_tenant(stack.database_url, policies=1)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run  # no worker: stays queued
    watch = stub.WatchRun(
        runs_pb2.WatchRunRequest(
            tenant_external_id=tenant.external_id, run_type=run.type, run_id=run.id
        ),
        timeout=30,
    )
    first = next(watch)
    assert first.run.id == run.id
    wait_for_metric(server_url, lambda s: value(s, "runsvc_watch_streams") == 1)
    watch.cancel()
    done = wait_for_metric(server_url, lambda s: value(s, "runsvc_watch_streams") == 0)
    labels = {"grpc_service": RUN_SERVICE, "grpc_method": "WatchRun", "grpc_type": "server_stream"}
    assert value(done, "grpc_server_handled_total", **labels, grpc_code="CANCELLED") == 1
    # A change reaches the stream through the hub: its delivery time is observed.
    second = stub.WatchRun(
        runs_pb2.WatchRunRequest(
            tenant_external_id=tenant.external_id, run_type=run.type, run_id=run.id
        ),
        timeout=60,
    )
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(second), daemon=True)
    reader.start()
    wait_for_metric(server_url, lambda s: value(s, "runsvc_watch_streams") == 1)
    stack.start_worker()
    reader.join(timeout=60)
    assert seen and seen[-1].run.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert value(scrape(server_url), "runsvc_watch_delivery_seconds_count") >= 1


def test_gateway_counts_requests_by_route_and_status_and_open_sse_streams(
    observed_stack, make_gateway
):
    stack = observed_stack()
    gateway = make_gateway(stack.target, "--metrics-addr", "127.0.0.1:0", stack=stack)
    url = gateway.process.wait_for(r"runsvc-gateway metrics on (\S+)")[1]
    tenant = seed_tenant(stack.database_url, policies=1)
    start_route = "/admin/t/{tenantExternalId}/runs/{runType}"
    with gateway.client() as http:
        created = http.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
        assert created.status_code == 201, created.text
        reused = http.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
        assert reused.status_code == 200
        assert http.get("/no/such/path").status_code == 404
        run_id = created.json()["run"]["id"]
        watch_path = f"/admin/t/{tenant.external_id}/runs/snapshot_capture/{run_id}/watch"
        with http.stream("GET", watch_path) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()  # kept: a dropped iterator closes the stream
            assert next(lines).startswith("retry:")  # open (the run stays queued)
            wait_for_metric(url, lambda s: value(s, "runsvc_gateway_sse_streams") == 1)
        done = wait_for_metric(url, lambda s: value(s, "runsvc_gateway_sse_streams") == 0)

    def requests(route: str, status: str, method: str = "POST") -> float:
        return value(done, "http_requests_total", method=method, route=route, status=status)

    assert requests(start_route, "201") == 1
    assert requests(start_route, "200") == 1
    assert requests("unmatched", "404", method="GET") == 1
    assert value(done, "http_request_duration_seconds_count", method="POST",
                 route=start_route, status="201") == 1  # fmt: skip
    watch_route = "/admin/t/{tenantExternalId}/runs/{runType}/{runId}/watch"
    assert requests(watch_route, "200", method="GET") == 1


def test_reaper_redispatches_and_lease_renewals_are_counted(observed_stack):
    """The run's message is lost (deleted from the broker's queue before any
    worker runs): the worker's reaper sends it again; the slow run renews
    its lease."""
    stack = observed_stack(RUNSVC_REDISPATCH_SECONDS="0.5")
    tenant = seed_tenant(stack.database_url, policies=4)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    lost = query_one(
        stack.database_url,
        "WITH lost AS (DELETE FROM dramatiq.queue WHERE queue_name = %s RETURNING 1) "
        "SELECT count(*) FROM lost",
        stack.env["RUNSVC_QUEUE"],
    )[0]
    assert lost == 1
    worker = stack.start_worker(
        RUNSVC_LEASE_SECONDS="0.9",  # renewed every 0.3 s
        RUNSVC_TENANT_SOURCE="tests.support.scripted_source:create",
        RUNSVC_TEST_SOURCE_DELAY="0.3",  # per call, one item per batch: 1.2 s in all
        RUNSVC_BATCH_SIZE="1",
        **METRICS_ON,
    )
    worker_url = worker_metrics_url(worker)
    assert wait_terminal(stub, run).status == runs_pb2.RUN_STATUS_SUCCEEDED
    done = wait_for_metric(
        worker_url, lambda s: value(s, "runsvc_runs_finished_total", run_type="snapshot_capture",
                                    status="succeeded") == 1
    )  # fmt: skip
    assert value(done, "runsvc_reaper_redispatched_total") >= 1
    assert value(done, "runsvc_lease_renewals_total", result="renewed") >= 1
    assert value(done, "runsvc_leases_lost_total") == 0
