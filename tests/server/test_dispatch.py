"""No acknowledged StartRun is left without its message, whatever happens to
the broker connection: with the Postgres broker the message commits with the
run (connections killed mid-burst); with RabbitMQ and Redis the dispatch
queue sends again after the connection is cut (the reaper is kept out of it)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from tenantpilot.runs.v1 import runs_pb2

from tests.support.db import query_all, query_one
from tests.support.runs import start, wait_terminal
from tests.support.seeding import seed_tenant
from tests.support.tcp_proxy import TcpProxy
from tests.worker.test_brokers import URL_VARIABLES, delete_rabbitmq_queues

STARTS = 120


def burst(
    stub, tenant: str, fault, *, every: float, strikes: int = 3
) -> tuple[list[runs_pb2.RunRecord], int]:
    """New runs from 8 callers while `fault()` strikes every `every` seconds,
    until at least STARTS calls were made and the fault struck `strikes`
    times (however fast the calls are); returns the acknowledged runs and the
    number of refused calls."""
    stop = threading.Event()
    struck_enough = threading.Event()
    counter = itertools.count()
    deadline = time.monotonic() + 60

    def strike() -> None:
        for struck in itertools.count(1):
            if stop.wait(every):
                return
            fault()
            if struck >= strikes:
                struck_enough.set()

    def call(i: int) -> runs_pb2.RunRecord | None:
        try:
            return start(stub, tenant, "snapshot_capture", target=f"burst-{i}").run
        except grpc.RpcError as error:
            # Not acknowledged: the call may or may not have committed.
            assert error.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ), error
            return None

    def caller() -> list[runs_pb2.RunRecord | None]:
        answers = []
        while time.monotonic() < deadline:
            i = next(counter)
            if i >= STARTS and struck_enough.is_set():
                break
            answers.append(call(i))
        return answers

    striker = threading.Thread(target=strike, daemon=True)
    striker.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = [a for part in pool.map(lambda _: caller(), range(8)) for a in part]
    finally:
        stop.set()
        striker.join()
    assert struck_enough.is_set(), f"the fault struck fewer than {strikes} times in 60 s"
    acknowledged = [run for run in answers if run is not None]
    return acknowledged, answers.count(None)


def test_postgres_broker_every_committed_run_has_its_message(idle_stack, tenant, database_url):
    terminated = []

    def kill_server_connections() -> None:
        rows = query_all(
            database_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            f"runsvc-server:{idle_stack.server.pid}",
        )
        terminated.extend(rows)

    acknowledged, _ = burst(
        idle_stack.stub(), tenant.external_id, kill_server_connections, every=0.2
    )
    assert terminated, "no connection was killed"
    assert acknowledged
    # Every run that exists (acknowledged or not) has exactly one message.
    rows = query_all(
        database_url,
        "SELECT r.id::text, count(q.message_id) FROM runs r "
        "LEFT JOIN dramatiq.queue q ON q.message->'args'->>0 = r.id::text "
        "WHERE r.tenant_external_id = %s GROUP BY r.id",
        tenant.external_id,
    )
    counts = dict(rows)
    assert {run.id for run in acknowledged} <= counts.keys()
    assert set(counts.values()) == {1}, counts


def proxied(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    credentials, _, _ = parts.netloc.rpartition("@")
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}" if credentials else host))


@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
def test_queued_dispatch_sends_again_after_the_broker_connection_is_cut(make_stack, kind):
    url = os.environ.get(URL_VARIABLES[kind])
    if not url:
        if os.environ.get("RUNSVC_TEST_REQUIRE_BROKERS") == "1":
            pytest.fail(f"{URL_VARIABLES[kind]} is not set but brokers are required")
        pytest.skip(f"set {URL_VARIABLES[kind]} to test the {kind} broker")
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname, parts.port)
    # The reaper would send lost messages again after an hour: not in this test.
    stack = make_stack(RUNSVC_BROKER_URL=url, RUNSVC_REDISPATCH_SECONDS="3600")
    try:
        stack.start_server(RUNSVC_BROKER_URL=proxied(url, proxy))
        stack.start_worker(threads=4)  # straight to the broker
        stub = stack.stub()
        tenant = seed_tenant(stack.database_url, policies=1)
        acknowledged, refused = burst(stub, tenant.external_id, proxy.cut, every=0.2)
        assert proxy.connections > 1, "the broker connection was never cut"
        assert refused == 0  # the broker is not on StartRun's path
        assert len(acknowledged) >= STARTS
        deadline = time.monotonic() + 120
        for run in acknowledged:
            remaining = max(1.0, deadline - time.monotonic())
            final = wait_terminal(stub, run, timeout=remaining)
            assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
        assert (
            query_one(
                stack.database_url,
                "SELECT count(*) FROM runs WHERE tenant_external_id = %s AND dispatch_count > 1",
                tenant.external_id,
            )[0]
            == 0
        ), "the reaper sent some of them"
    finally:
        stack.stop()
        proxy.close()
        if kind == "rabbitmq":
            delete_rabbitmq_queues(url, stack.env["RUNSVC_QUEUE"])
