"""The same end-to-end behaviour on every broker RUNSVC_BROKER_URL can name:
Postgres (default), RabbitMQ and Redis. RabbitMQ and Redis run when
RUNSVC_TEST_RABBITMQ_URL / RUNSVC_TEST_REDIS_URL are set; CI sets them and
RUNSVC_TEST_REQUIRE_BROKERS=1, which turns a missing URL into a failure."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from tenantpilot.runs.v1 import runs_pb2

from tests.support.runs import get, start, wait_terminal
from tests.support.seeding import seed_tenant

SCRIPTED = "tests.support.scripted_source:create"
URL_VARIABLES = {"rabbitmq": "RUNSVC_TEST_RABBITMQ_URL", "redis": "RUNSVC_TEST_REDIS_URL"}


def delete_rabbitmq_queues(url: str, queue: str) -> None:
    import pika

    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)


@pytest.fixture(params=["postgres", "rabbitmq", "redis"])
def broker_stack(request, make_stack):
    kind = request.param
    if kind == "postgres":
        yield make_stack()
        return
    url = os.environ.get(URL_VARIABLES[kind])
    if not url:
        if os.environ.get("RUNSVC_TEST_REQUIRE_BROKERS") == "1":
            pytest.fail(f"{URL_VARIABLES[kind]} is not set but brokers are required")
        pytest.skip(f"set {URL_VARIABLES[kind]} to test the {kind} broker")
    stack = make_stack(RUNSVC_BROKER_URL=url)
    yield stack
    stack.stop()
    if kind == "rabbitmq":
        delete_rabbitmq_queues(url, stack.env["RUNSVC_QUEUE"])


def test_runs_start_execute_and_stream_over_the_broker(broker_stack):
    broker_stack.start_server()
    broker_stack.start_worker(threads=2)
    stub = broker_stack.stub()
    tenant = seed_tenant(broker_stack.database_url, policies=10)

    runs = [
        start(stub, tenant.external_id, "snapshot_capture", target=f"scope-{i}").run
        for i in range(5)
    ]
    watched = list(
        stub.WatchRun(
            runs_pb2.WatchRunRequest(
                tenant_external_id=tenant.external_id,
                run_type="snapshot_capture",
                run_id=runs[0].id,
            ),
            timeout=60,
        )
    )
    assert watched[-1].run.status == runs_pb2.RUN_STATUS_SUCCEEDED
    for run in runs:
        final = wait_terminal(stub, run)
        assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
        assert (final.counts.total, final.counts.succeeded) == (10, 10)


def test_killed_worker_is_recovered_over_the_broker(broker_stack):
    broker_stack.env.update(
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_DELAY="0.01",
        RUNSVC_BATCH_SIZE="10",
        RUNSVC_LEASE_SECONDS="2",
    )
    broker_stack.start_server()
    first = broker_stack.start_worker(threads=1)
    stub = broker_stack.stub()
    tenant = seed_tenant(broker_stack.database_url, policies=150)
    run = start(stub, tenant.external_id, "snapshot_capture").run

    deadline = time.monotonic() + 60
    while get(stub, run).counts.succeeded < 20:
        assert time.monotonic() < deadline, "the run never progressed"
        time.sleep(0.05)
    first.kill()
    broker_stack.start_worker(threads=1)
    final = wait_terminal(stub, run, timeout=90)
    assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert (final.counts.total, final.counts.succeeded, final.counts.failed) == (150, 150, 0)
