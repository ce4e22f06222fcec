"""Stacks whose processes serve metrics, for the observability tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Stack
from tests.gateway.conftest import make_gateway  # noqa: F401 - a fixture for these tests too
from tests.support.processes import ServiceProcess

METRICS_ON = {"RUNSVC_METRICS_ADDR": "127.0.0.1:0"}


def server_metrics_url(stack: Stack) -> str:
    assert stack.server is not None
    return stack.server.wait_for(r"runsvc metrics on (\S+)")[1]


def worker_metrics_url(worker: ServiceProcess) -> str:
    return worker.wait_for(r"runsvc worker metrics on (\S+)")[1]


@pytest.fixture
def observed_stack(make_stack: Callable[..., Stack]) -> Callable[..., Stack]:
    """A stack of its own database (no other test's runs in its counts and
    queue) whose server serves metrics; workers are started by the test."""

    def make(**env: str) -> Stack:
        stack = make_stack(own_database=True, **env)
        stack.start_server(**METRICS_ON)
        return stack

    return make
