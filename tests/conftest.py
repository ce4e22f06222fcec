"""Fixtures that start the real parts: Postgres (a fresh database per
session), the gRPC server and Dramatiq workers as processes on free ports,
and gRPC channels to them. Everything started here is stopped here."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from tenantpilot.runs.v1 import runs_pb2_grpc

from tests.support import processes
from tests.support.auth import BearerToken, new_token
from tests.support.database import admin_url, fresh_database
from tests.support.processes import ServiceProcess, start_server, start_worker
from tests.support.seeding import SeededTenant, seed_tenant

# The Graph emulator fixture (`graph`), for any test that needs Microsoft Graph.
pytest_plugins = ["tests.support.graph"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# stub()'s default: the stack's own token.
STACK_TOKEN = object()


# How much of each process's log a failing test's report shows.
LOG_TAIL_LINES = 40
# How many processes had started when the test's setup began.
_FIRST_PROCESS = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_FIRST_PROCESS] = len(processes.STARTED)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test's report ends with the last lines of the log of every
    process it started: CI keeps no log files, and a failure under load is
    often not seen again alone."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for started in processes.STARTED[item.stash.get(_FIRST_PROCESS, 0) :]:
        report.sections.append((f"log of {started.log_path.name}", started.tail(LOG_TAIL_LINES)))


@pytest.fixture(scope="session")
def admin_database_url() -> Iterator[str]:
    with admin_url() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    with fresh_database(admin_database_url) as url:
        yield url


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


def service_env(database_url: str, **overrides: str) -> dict[str, str]:
    """Environment for runsvc processes: a queue of their own, and short
    timings so that recovery paths run within a test's patience."""
    env = {
        **os.environ,
        "RUNSVC_DATABASE_URL": database_url,
        "RUNSVC_BROKER_URL": database_url,
        "RUNSVC_QUEUE": f"test-{uuid.uuid4().hex[:10]}",
        "RUNSVC_LEASE_SECONDS": "10",
        "RUNSVC_REDISPATCH_SECONDS": "10",
        "RUNSVC_REAPER_INTERVAL_SECONDS": "0.5",
        "RUNSVC_SOURCE_RETRY_BASE_SECONDS": "0.01",
        "RUNSVC_LOG_LEVEL": "INFO",
        # Lets workers import test adapters (RUNSVC_TENANT_SOURCE=tests.support...).
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    env.update(overrides)
    return env


@dataclass
class Stack:
    """A server and its workers sharing one queue."""

    env: dict[str, str]
    log_dir: Path
    target: str = ""
    server: ServiceProcess | None = None
    workers: list[ServiceProcess] = field(default_factory=list)
    channels: list[grpc.Channel] = field(default_factory=list)
    # The bearer token its callers present: an operator token for all
    # tenants, created in the stack's database when the stack is made.
    token: str | None = None
    token_name: str = ""  # the name it was created with (when the stack made it)
    # Channel credentials when the server speaks TLS (set by TLS tests).
    credentials: grpc.ChannelCredentials | None = None
    channel_options: tuple[tuple[str, Any], ...] = ()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC metadata carrying the stack's token, for calls made by hand."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    @property
    def database_url(self) -> str:
        return self.env["RUNSVC_DATABASE_URL"]

    def __post_init__(self) -> None:
        # Ready before the server starts, for callers that set up clients first.
        if self.token is None:
            self.token_name = f"stack-{uuid.uuid4().hex[:12]}"
            self.token = new_token(self.database_url, name=self.token_name)

    def start_server(self, **env_overrides: str) -> str:
        self.server, self.target = start_server({**self.env, **env_overrides}, self.log_dir)
        return self.target

    def start_worker(self, *, processes: int = 1, threads: int = 2, **env: str) -> ServiceProcess:
        worker = start_worker(
            {**self.env, **env}, self.log_dir, processes=processes, threads=threads
        )
        self.workers.append(worker)
        return worker

    def channel(self, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
        """A channel to the server (TLS with the stack's or the given credentials)."""
        credentials = credentials or self.credentials
        if credentials is None:
            channel = grpc.insecure_channel(self.target, options=self.channel_options)
        else:
            channel = grpc.secure_channel(self.target, credentials, options=self.channel_options)
        self.channels.append(channel)
        return channel

    def stub(
        self,
        token: str | object | None = STACK_TOKEN,
        *,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> runs_pb2_grpc.RunServiceStub:
        """A stub sending the stack's token on every call; `token=` another
        one, `token=None` none at all."""
        bearer = self.token if token is STACK_TOKEN else token
        channel = self.channel(credentials)
        if bearer is not None:
            channel = grpc.intercept_channel(channel, BearerToken(str(bearer)))
        return runs_pb2_grpc.RunServiceStub(channel)

    def stop(self) -> None:
        for channel in self.channels:
            channel.close()
        for worker in self.workers:
            worker.stop()
        if self.server is not None:
            self.server.stop()


@contextlib.contextmanager
def running_stack(env: dict[str, str], log_dir: Path) -> Iterator[Stack]:
    """A server and one worker (four threads) on `env`, stopped on exit."""
    started = Stack(env, log_dir)
    try:
        started.start_server()
        started.start_worker(threads=4)
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def stack(database_url: str, log_dir: Path) -> Iterator[Stack]:
    """The shared stack: one server, one worker, Postgres broker."""
    with running_stack(service_env(database_url), log_dir) as shared:
        yield shared


@pytest.fixture
def make_stack(
    database_url: str, admin_database_url: str, log_dir: Path
) -> Iterator[Callable[..., Stack]]:
    """Stacks with settings of their own (broker, lease, ...), stopped after the test.

    `own_database=True` gives the stack a database of its own: the shared
    stack's reaper would otherwise adopt runs that a test stages by hand.
    `database=` shares another stack's database (each stack has its queue)."""
    made: list[Stack] = []
    with contextlib.ExitStack() as databases:

        def make(
            *, own_database: bool = False, database: str | None = None, **env_overrides: str
        ) -> Stack:
            url = database or database_url
            if own_database:
                url = databases.enter_context(fresh_database(admin_database_url))
            new = Stack(service_env(url, **env_overrides), log_dir)
            made.append(new)
            return new

        try:
            yield make
        finally:
            for each in made:
                each.stop()


@pytest.fixture(scope="session")
def idle_stack(database_url: str, log_dir: Path) -> Iterator[Stack]:
    """A server whose queue no worker consumes: its runs stay queued, so
    tests can look at dedupe and validation without runs finishing."""
    # Its runs are never due for redispatch, so no other stack's reaper
    # picks them up either.
    idle = Stack(service_env(database_url, RUNSVC_REDISPATCH_SECONDS="86400"), log_dir)
    try:
        idle.start_server()
        yield idle
    finally:
        idle.stop()


@pytest.fixture(scope="session")
def idle_stub(idle_stack: Stack) -> runs_pb2_grpc.RunServiceStub:
    return idle_stack.stub()


@pytest.fixture(scope="session")
def stub(stack: Stack) -> runs_pb2_grpc.RunServiceStub:
    return stack.stub()


@pytest.fixture
def tenant(database_url: str) -> SeededTenant:
    return seed_tenant(database_url)
