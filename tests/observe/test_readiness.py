"""Readiness: the run service is NOT_SERVING in gRPC health (and the
gateway's /readyz false) while its database cannot be reached, and SERVING
again once it is back, without a restart. The test owns that Postgres."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runsvc.broker import prepare_broker
from runsvc.store.migrate import migrate
from tests.conftest import Stack, service_env
from tests.observe.conftest import METRICS_ON, server_metrics_url
from tests.support.metrics import scrape, value
from tests.support.own_postgres import OwnPostgres
from tests.support.own_postgres import own_postgres as started_postgres
from tests.support.runs import get, start
from tests.support.seeding import seed_tenant

RUN_SERVICE = "tenantpilot.runs.v1.RunService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    with started_postgres() as postgres:
        migrate(postgres.url)
        prepare_broker(postgres.url)
        yield postgres


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def test_health_follows_the_database_down_and_back_up(own_postgres, log_dir, make_gateway):
    stack = Stack(service_env(own_postgres.url, RUNSVC_READINESS_INTERVAL_SECONDS="0.3"), log_dir)
    try:
        stack.start_server(**METRICS_ON)
        metrics_url = server_metrics_url(stack)
        gateway = make_gateway(stack.target, stack=stack)
        health = health_pb2_grpc.HealthStub(stack.channel())

        def status(service: str = RUN_SERVICE) -> int:
            request = health_pb2.HealthCheckRequest(service=service)
            return health.Check(request, timeout=5).status

        def ready() -> int:
            return httpx.get(f"{gateway.url}/readyz", timeout=10).status_code

        tenant = seed_tenant(own_postgres.url, policies=1)
        stub = stack.stub()
        run = start(stub, tenant.external_id, "snapshot_capture").run
        assert status() == SERVING and ready() == 200

        own_postgres.stop()
        wait_until(lambda: status() == NOT_SERVING, "NOT_SERVING while the database is down")
        assert status("") == SERVING  # the process itself is alive
        down = httpx.get(f"{gateway.url}/readyz", timeout=10)
        assert down.status_code == 503 and down.json() == {"ready": False}
        assert value(scrape(metrics_url), "runsvc_database_reachable") == 0
        with pytest.raises(grpc.RpcError):
            get(stub, run)

        own_postgres.start()
        wait_until(lambda: status() == SERVING, "SERVING again once the database is back")
        wait_until(lambda: ready() == 200, "the gateway ready again")
        assert get(stub, run).id == run.id  # the same server process serves again
        samples = scrape(metrics_url)
        assert value(samples, "runsvc_database_reachable") == 1
        assert value(samples, "runsvc_watch_hub_reconnects_total") >= 1
        server_log = stack.server.output()
        assert "NOT_SERVING" in server_log and "is SERVING" in server_log
    finally:
        stack.stop()
