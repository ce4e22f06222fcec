"""The watch hub against real Postgres, real gRPC consumers and real faults:
a consumer that stops reading gets the newest state, not a backlog (SPEC §5);
the LISTEN connection killed, half-open, or the database restarted under
open watches, and an unexpected error in the hub: watchers still see every
later change and the terminal state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import grpc
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from tenantpilot.runs.v1 import runs_pb2

from runsvc.server.watch_hub import Watcher, WatchHub
from tests.conftest import PROJECT_ROOT, Stack, service_env
from tests.support.database import fresh_database
from tests.support.db import query_one
from tests.support.own_postgres import own_postgres
from tests.support.runs import get, start
from tests.support.seeding import seed_tenant
from tests.support.tcp_proxy import TcpProxy

CHANGES = 200


def bump(database_url: str, run_id: str, times: int = 1) -> None:
    """Commits `times` changes of the run, each on its own (one NOTIFY each)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(times):
            conn.execute("UPDATE runs SET version = version + 1 WHERE id = %s", (run_id,))


def finish(database_url: str, run_id: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "UPDATE runs SET status = 'succeeded', finished_at = now(), version = version + 1 "
            "WHERE id = %s RETURNING version",
            (run_id,),
        ).fetchone()[0]


class Consumer:
    """tests.support.watch_consumer as a process, its lines read as they come."""

    def __init__(self, target: str, token: str, run: runs_pb2.RunRecord) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.watch_consumer",
                target,
                token,
                run.tenant_external_id,
                run.type,
                run.id,
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_lines(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < n:
            assert time.monotonic() < deadline, f"consumer printed only {self.lines}"
            time.sleep(0.02)

    def finish(self, timeout: float = 60) -> list[tuple[int, str]]:
        assert self.proc.wait(timeout=timeout) == 0, self.lines
        self._reader.join(10)
        assert self.lines[-1] == "end OK", self.lines
        return [(int(v), s) for v, s in (line.split() for line in self.lines[:-1])]


def test_a_consumer_that_stops_reading_gets_the_newest_state_not_a_backlog(
    idle_stack, idle_stub, tenant
):
    run = start(idle_stub, tenant.external_id, "snapshot_capture").run
    slow = Consumer(idle_stack.target, idle_stack.token, run)
    reader = Consumer(idle_stack.target, idle_stack.token, run)
    slow.wait_lines(1)
    reader.wait_lines(1)
    slow.proc.send_signal(signal.SIGSTOP)  # its socket is not read any more
    try:
        bump(idle_stack.database_url, run.id, CHANGES)
        last = finish(idle_stack.database_url, run.id)
        # A consumer that reads is not held up by the one that does not.
        read = reader.finish()
        assert read[-1] == (last, "RUN_STATUS_SUCCEEDED")
    finally:
        slow.proc.send_signal(signal.SIGCONT)
    got = slow.finish()
    versions = [v for v, _ in got]
    assert versions == sorted(set(versions)), "versions must strictly increase"
    assert got[0] == (run.version, "RUN_STATUS_QUEUED")
    assert got[-1] == (last, "RUN_STATUS_SUCCEEDED")  # the newest state, and the end
    # What the stopped reader's small window held, then the newest: no backlog.
    assert len(got) < CHANGES // 4, f"{len(got)} messages for {CHANGES} changes"


def hub_connections(database_url: str, pid: int) -> list[int]:
    rows = query_one(
        database_url,
        "SELECT array_agg(pid) FROM pg_stat_activity WHERE application_name = %s",
        f"runsvc-watch-hub:{pid}",
    )[0]
    return rows or []


def test_listen_connection_terminated_under_open_watches(make_stack):
    stack = make_stack(RUNSVC_REDISPATCH_SECONDS="86400")
    stack.start_server()
    tenant = seed_tenant(stack.database_url)
    run = start(stack.stub(), tenant.external_id, "snapshot_capture").run
    consumers = [Consumer(stack.target, stack.token, run) for _ in range(3)]
    for consumer in consumers:
        consumer.wait_lines(1)
    (listener,) = hub_connections(stack.database_url, stack.server.pid)
    query_one(stack.database_url, "SELECT pg_terminate_backend(%s)", listener)
    bump(stack.database_url, run.id)  # while no connection listens
    deadline = time.monotonic() + 30
    while hub_connections(stack.database_url, stack.server.pid) in ([], [listener]):
        assert time.monotonic() < deadline, "the hub never listened again"
        time.sleep(0.05)
    for consumer in consumers:
        consumer.wait_lines(2)  # the change made while it was away
    bump(stack.database_url, run.id)
    for consumer in consumers:
        consumer.wait_lines(3)  # each change seen (changes closer together coalesce)
    last = finish(stack.database_url, run.id)
    for consumer in consumers:
        got = consumer.finish()
        assert [v for v, _ in got] == [1, 2, 3, last]
        assert got[-1][1] == "RUN_STATUS_SUCCEEDED"


@contextlib.asynccontextmanager
async def running_hub(listen_url: str, pool_url: str, **options: float) -> AsyncIterator[WatchHub]:
    pool = AsyncConnectionPool(
        pool_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True)
    hub = WatchHub(listen_url, pool, reconnect_delay=0.1, **options)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
        await pool.close()


async def newest(watcher: Watcher, version: int, timeout: float = 30) -> None:
    """Waits (up to `timeout`) for a snapshot of at least `version`."""
    async with asyncio.timeout(timeout):
        while watcher.latest is None or watcher.latest.version < version:
            await watcher.next_after(watcher.latest.version if watcher.latest else 0)


def via(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def test_a_healthy_listen_connection_hears_its_pings_and_is_kept(idle_stub, tenant, database_url):
    run = start(idle_stub, tenant.external_id, "snapshot_capture").run

    async def scenario() -> tuple[int, int, int]:
        async with (
            running_hub(database_url, database_url, ping_seconds=0.2, ping_timeout=5) as hub,
            hub.watch(uuid.UUID(run.id)) as watcher,
            await psycopg.AsyncConnection.connect(database_url, autocommit=True) as ear,
        ):
            await watcher.first()
            # The test listens on the hub's ping channel too: three pings out.
            await ear.execute(sql.SQL("LISTEN {}").format(sql.Identifier(hub.ping_channel)))
            sent = [ping async for ping in ear.notifies(timeout=30, stop_after=3)]
            # Delivered in commit order: once the hub has this change, it has
            # had every ping before it.
            await asyncio.to_thread(bump, database_url, run.id)
            await newest(watcher, run.version + 1)
            return len(sent), hub.pings_heard, hub.listen_connections

    sent, heard, listen_connections = asyncio.run(scenario())
    assert sent >= 3
    assert heard >= sent
    assert listen_connections == 1  # no ping went unheard


def test_a_half_open_listen_connection_is_noticed_and_replaced(idle_stub, tenant, database_url):
    run = start(idle_stub, tenant.external_id, "snapshot_capture").run
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)

    async def scenario() -> tuple[int, float]:
        async with (
            running_hub(
                via(proxy, database_url), database_url, ping_seconds=1, ping_timeout=1
            ) as hub,
            hub.watch(uuid.UUID(run.id)) as watcher,
        ):
            await watcher.first()
            proxy.freeze()  # no error, no data: only a ping can tell
            began = time.monotonic()
            await asyncio.to_thread(bump, database_url, run.id)
            await newest(watcher, run.version + 1)
            return hub.listen_connections, time.monotonic() - began

    try:
        listen_connections, noticed_after = asyncio.run(scenario())
    finally:
        proxy.close()
    assert listen_connections == 2
    assert noticed_after < 30


def test_a_run_the_hub_cannot_read_ends_only_its_own_watchers(idle_stub, database_url, caplog):
    tenant = seed_tenant(database_url)
    broken = start(idle_stub, tenant.external_id, "snapshot_capture", target="broken").run
    healthy = start(idle_stub, tenant.external_id, "snapshot_capture", target="healthy").run

    async def scenario() -> BaseException:
        async with (
            running_hub(database_url, database_url) as hub,
            hub.watch(uuid.UUID(healthy.id)) as watcher,
        ):
            await watcher.first()
            async with hub.watch(uuid.UUID(broken.id)) as doomed:
                await doomed.first()
                # A row no code of runsvc writes: a safe_error without a code.
                with psycopg.connect(database_url, autocommit=True) as conn:
                    conn.execute(
                        "UPDATE runs SET status = 'failed', finished_at = now(), "
                        "safe_error = '{\"oops\": 1}', version = version + 1 WHERE id = %s",
                        (broken.id,),
                    )
                    conn.execute(
                        "UPDATE runs SET version = version + 1 WHERE id = %s", (healthy.id,)
                    )
                async with asyncio.timeout(30):
                    try:
                        await doomed.next_after(broken.version)
                    except RuntimeError as error:
                        ended = error
            await newest(watcher, healthy.version + 1)
            return ended

    with caplog.at_level(logging.ERROR, logger="runsvc.server.watch_hub"):
        ended = asyncio.run(scenario())
    assert isinstance(ended.__cause__, KeyError)
    assert any(broken.id in r.getMessage() for r in caplog.records)


def test_an_unexpected_error_restarts_the_task_logs_it_and_resyncs(
    idle_stub, tenant, database_url, caplog
):
    run = start(idle_stub, tenant.external_id, "snapshot_capture").run

    async def scenario() -> tuple[int, int]:
        async with (
            running_hub(database_url, database_url) as hub,
            hub.watch(uuid.UUID(run.id)) as watcher,
        ):
            await watcher.first()
            crashed = []

            def parse_crashing_once(payload: str) -> uuid.UUID | None:
                if not crashed:
                    crashed.append(payload)
                    raise RuntimeError("a bug in the listen task")
                return WatchHub._parse(payload)

            hub._parse = parse_crashing_once  # an unexpected error, once
            # The notification of this change is the one that crashes the
            # task: only the restart's resync can deliver it.
            await asyncio.to_thread(bump, database_url, run.id)
            await newest(watcher, run.version + 1)
            async with asyncio.timeout(30):  # and the task is back on duty
                while hub.listen_connections < 2:
                    await asyncio.sleep(0.02)
            return hub.restarts, hub.listen_connections

    with caplog.at_level(logging.ERROR, logger="runsvc.server.watch_hub"):
        restarts, listen_connections = asyncio.run(scenario())
    assert restarts == 1
    assert listen_connections == 2
    assert any(
        "listen task failed" in r.getMessage() and "a bug in the listen task" in r.getMessage()
        for r in caplog.records
    )


def test_watches_beyond_the_limit_are_refused_with_resource_exhausted(make_stack):
    stack = make_stack(RUNSVC_MAX_WATCHES="2", RUNSVC_REDISPATCH_SECONDS="86400")
    stack.start_server()
    tenant = seed_tenant(stack.database_url)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    request = runs_pb2.WatchRunRequest(
        tenant_external_id=run.tenant_external_id, run_type=run.type, run_id=run.id
    )
    held = [stub.WatchRun(request, timeout=60) for _ in range(2)]
    for stream in held:
        next(stream)  # open and served
    try:
        refused = stub.WatchRun(request, timeout=10)
        try:
            next(refused)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "limit" in error.details()
        else:
            raise AssertionError("a third watch was accepted")
        held.pop().cancel()
        deadline = time.monotonic() + 30
        while True:  # the freed slot is given to the next caller
            try:
                again = stub.WatchRun(request, timeout=10)
                assert next(again).run.id == run.id
                again.cancel()
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline, "the slot was never freed"
                time.sleep(0.05)
    finally:
        for stream in held:
            stream.cancel()


def test_postgres_stopped_and_started_under_open_watches(log_dir):
    with own_postgres() as postgres, fresh_database(postgres.url) as url:
        stack = Stack(service_env(url, RUNSVC_REDISPATCH_SECONDS="86400"), log_dir)
        try:
            stack.start_server()
            stub = stack.stub()
            tenant = seed_tenant(url)
            run = start(stub, tenant.external_id, "snapshot_capture").run
            consumers = [Consumer(stack.target, stack.token, run) for _ in range(3)]
            for consumer in consumers:
                consumer.wait_lines(1)

            postgres.stop()
            postgres.start()
            # The first call after the restart is served: the pool's dead
            # connections are replaced on checkout, not handed to it.
            assert get(stub, run).version == run.version

            for n, change in enumerate((lambda: bump(url, run.id), lambda: bump(url, run.id))):
                change()
                for consumer in consumers:
                    consumer.wait_lines(2 + n)  # every later change reaches every watcher
            last = finish(url, run.id)
            for consumer in consumers:
                got = consumer.finish()
                assert [v for v, _ in got] == [1, 2, 3, last]
                assert got[-1][1] == "RUN_STATUS_SUCCEEDED"
        finally:
            stack.stop()
