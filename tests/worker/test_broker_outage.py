"""A broker outage (SPEC §6): a Redis this test starts on a free port is
stopped during a burst of StartRun calls and started again. Every
acknowledged run ends with exact counts, and each one whose message could
not be sent is dispatched within one reaper interval of the broker's
return, with the default redispatch settings."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tenantpilot.runs.v1 import runs_pb2

from tests.support.db import query_one
from tests.support.processes import free_port
from tests.support.runs import start, wait_terminal
from tests.support.seeding import seed_tenant
from tests.support.waiting import wait_until

REAPER_INTERVAL = 5.0  # RUNSVC_REAPER_INTERVAL_SECONDS' default


class Redis:
    """A redis-server of the test's own, with an append-only file, so that
    what it acknowledged survives its restart."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.accepts, timeout=20)

    def accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Redis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed to test a broker outage")
    redis = Redis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def db_now(database_url: str):
    return query_one(database_url, "SELECT now()")[0]


def test_runs_acknowledged_during_a_broker_outage_are_dispatched_when_it_returns(
    make_stack, own_redis
):
    stack = make_stack(
        own_database=True,
        RUNSVC_BROKER_URL=own_redis.url,
        # The defaults, not the short test timings.
        RUNSVC_REDISPATCH_SECONDS="30",
        RUNSVC_REAPER_INTERVAL_SECONDS=str(REAPER_INTERVAL),
    )
    stack.start_server()
    stack.start_worker(threads=2)
    tenant = seed_tenant(stack.database_url, policies=3)
    stub = stack.stub()

    before = [
        start(stub, tenant.external_id, "snapshot_capture", target=f"before-{i}").run
        for i in range(5)
    ]
    own_redis.stop()
    during = [
        start(stub, tenant.external_id, "snapshot_capture", target=f"during-{i}").run
        for i in range(10)
    ]
    # The outage has bitten once the server's dispatch has failed a send and
    # is retrying it (its log line), not after some fixed time.
    assert stack.server is not None
    stack.server.wait_for(r"dispatch of \d+ runs failed, retrying", timeout=30)
    own_redis.start()
    returned_at = db_now(stack.database_url)

    for run in before + during:
        final = wait_terminal(stub, run, timeout=60)
        assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
        assert (final.counts.total, final.counts.succeeded, final.counts.failed) == (3, 3, 0)
    for run in during:
        # Its first send failed. It started soon after the broker was back,
        # never a lease later: sent again by the server's dispatch queue or
        # by the reaper, or claimed meanwhile by a worker thread that had
        # work in hand (a claim takes the next run, whatever message woke
        # the thread).
        started_at = query_one(
            stack.database_url, "SELECT started_at FROM runs WHERE id = %s", run.id
        )[0]
        delay = (started_at - returned_at).total_seconds()
        assert delay <= REAPER_INTERVAL + 1.5, f"started {delay:.1f} s after the broker returned"
