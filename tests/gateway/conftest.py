"""Fixtures for the REST gateway: the real `runsvc-gateway` process on a free
port in front of a real server (and worker), and HTTP clients that present
the stack's token the way legacy callers do, in the Authorization header."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Stack
from tests.support.processes import ServiceProcess

GATEWAY_READY = r"runsvc-gateway listening on (http://\S+)"


@dataclass
class Gateway:
    process: ServiceProcess
    url: str
    stack: Stack | None

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers=auth_headers(self.stack), timeout=30, **kwargs
        )

    def async_client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers=auth_headers(self.stack), timeout=30, **kwargs
        )


def auth_headers(stack: Stack | None) -> dict[str, str]:
    if stack is not None and stack.token:
        return {"Authorization": f"Bearer {stack.token}"}
    return {}


def start_gateway(
    grpc_target: str,
    log_dir: Path,
    *extra_args: str,
    stack: Stack | None = None,
    env: dict[str, str] | None = None,
) -> Gateway:
    """`python -m runsvc_gateway` on a free port (port 0: it prints the real one)."""
    process = ServiceProcess(
        "gateway",
        [
            sys.executable,
            "-m",
            "runsvc_gateway",
            "--grpc-target",
            grpc_target,
            "--http-addr",
            "127.0.0.1:0",
            *extra_args,
        ],
        # No RUNSVC_* settings at all, so no database URL: the gateway
        # reaches the service through gRPC only (`env`: the test's own).
        {**{k: v for k, v in os.environ.items() if not k.startswith("RUNSVC_")}, **(env or {})},
        log_dir,
    )
    try:
        match = process.wait_for(GATEWAY_READY)
    except Exception:
        process.stop()
        raise
    return Gateway(process, match[1], stack)


@pytest.fixture
def make_gateway(log_dir: Path) -> Iterator:
    """Gateways of a test's own (other backends, other limits), stopped after it."""
    started: list[Gateway] = []

    def make(
        grpc_target: str,
        *extra_args: str,
        stack: Stack | None = None,
        env: dict[str, str] | None = None,
    ) -> Gateway:
        gateway = start_gateway(grpc_target, log_dir, *extra_args, stack=stack, env=env)
        started.append(gateway)
        return gateway

    try:
        yield make
    finally:
        for gateway in started:
            gateway.process.stop()


@contextlib.contextmanager
def _gateway_for(stack: Stack, log_dir: Path) -> Iterator[Gateway]:
    started = start_gateway(stack.target, log_dir, "--heartbeat", "1", stack=stack)
    try:
        yield started
    finally:
        started.process.stop()


@pytest.fixture(scope="session")
def gateway(stack: Stack, log_dir: Path) -> Iterator[Gateway]:
    """In front of the shared stack (server and worker): runs finish."""
    with _gateway_for(stack, log_dir) as started:
        yield started


@pytest.fixture(scope="session")
def idle_gateway(idle_stack: Stack, log_dir: Path) -> Iterator[Gateway]:
    """In front of the idle stack (no worker): runs stay queued."""
    with _gateway_for(idle_stack, log_dir) as started:
        yield started


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client() as client:
        yield client


@pytest.fixture
def idle_http(idle_gateway: Gateway) -> Iterator[httpx.Client]:
    with idle_gateway.client() as client:
        yield client
