"""Builds and runs the gRPC server process: grpc.aio, RunService, health,
reflection, one watch hub and one connection pool per process."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.broker import Dispatcher, broker_kind, build_broker
from runsvc.config import Settings
from runsvc.observe.grpc_server import Observer
from runsvc.observe.metrics import server as metrics
from runsvc.redact import describe_exception
from runsvc.server.auth import Authenticator, AuthGuard
from runsvc.server.calls import CallSteps
from runsvc.server.dispatch import QueuedDispatch, RunDispatch, TransactionalDispatch
from runsvc.server.queue_gauges import QueueGauges
from runsvc.server.readiness import Readiness
from runsvc.server.servicer import RunService
from runsvc.server.watch_hub import WatchHub
from runsvc.store.pool import KEEPALIVES, LivenessCheck
from runsvc.store.runs import run_dispatch_due_now
from runsvc_observe.metrics import serve_metrics, url
from runsvc_observe.tracing import tracing_enabled

log = logging.getLogger(__name__)

SERVICE_NAME = runs_pb2.DESCRIPTOR.services_by_name["RunService"].full_name


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    pool: AsyncConnectionPool
    hub: WatchHub
    health: HealthServicer
    dispatch: RunDispatch
    readiness: Readiness
    # The Prometheus endpoint and what it reads, with --metrics-addr.
    metrics_server: WSGIServer | None = None
    queue_gauges: QueueGauges | None = None

    @property
    def metrics_port(self) -> int | None:
        return self.metrics_server.server_port if self.metrics_server else None

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.readiness.stop()
        await self.server.stop(grace)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        if self.queue_gauges is not None:
            REGISTRY.unregister(self.queue_gauges)
        await self.hub.stop()
        await self.dispatch.close(grace)
        await self.pool.close()


def build_dispatch(settings: Settings, pool: AsyncConnectionPool) -> RunDispatch:
    """Postgres broker: the message is written with the run. RabbitMQ and
    Redis: a bounded queue, sent in batches after commit."""
    if broker_kind(settings.broker_url) == "postgres":
        return TransactionalDispatch(settings.queue_name, pool)
    loop = asyncio.get_running_loop()

    async def make_due(run_ids: list[uuid.UUID]) -> None:
        try:
            async with pool.connection() as conn:
                for run_id in run_ids:
                    await run_dispatch_due_now(conn, run_id)
        except Exception as exc:  # the run's dispatch time still brings the reaper
            log.warning("could not mark %d runs due: %s", len(run_ids), describe_exception(exc))

    def unsent(run_ids: list[uuid.UUID]) -> None:
        # Due at once: a reaper sends them at its next pass, not after the
        # redispatch time. Called from the event loop or the sender thread.
        asyncio.run_coroutine_threadsafe(make_due(run_ids), loop)

    return QueuedDispatch(
        Dispatcher(build_broker(settings.broker_url), settings.queue_name),
        max_queued=settings.dispatch_queue_size,
        batch_size=settings.dispatch_batch_size,
        on_unsent=unsent,
        on_send_failed=metrics.dispatch_failures.inc,
    )


async def start_server(
    settings: Settings,
    grpc_addr: str,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> RunningServer:
    """Starts the server; every call is observed, an unparsable request
    refused, the caller authenticated (runsvc.server.calls), then
    `interceptors` run."""
    liveness = LivenessCheck()
    pool = AsyncConnectionPool(
        settings.database_url,
        min_size=settings.server_pool_min_size,
        max_size=settings.server_pool_max_size,
        # The pid in the name lets operators (and tests) tell processes apart.
        kwargs={
            "autocommit": True,
            "application_name": f"runsvc-server:{os.getpid()}",
            **KEEPALIVES,
        },
        # After a database restart every pooled connection is dead: each is
        # checked on checkout (no round trip) and replaced, not handed out.
        check=liveness,
        open=False,
        name="runsvc-server",
    )
    liveness.pool = pool
    await pool.open(wait=True, timeout=30)
    hub = WatchHub(settings.database_url, pool, ping_seconds=settings.watch_ping_seconds)
    await hub.start()
    dispatch = build_dispatch(settings, pool)

    authenticator = Authenticator(
        pool,
        cache_seconds=settings.auth_cache_seconds,
        touch_seconds=settings.auth_touch_seconds,
    )
    # Every call's steps (observing, unparsable requests refused,
    # authentication), then the trace span (with OTEL_* set): inside the
    # steps, as the servicer's own streams are what the span wraps.
    tracing: list[grpc.aio.ServerInterceptor] = []
    if tracing_enabled():
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        tracing.append(aio_server_interceptor())
    server = grpc.aio.server(
        interceptors=[
            CallSteps(
                Observer(with_metrics=settings.metrics_addr is not None),
                AuthGuard(authenticator),
            ),
            *tracing,
            *interceptors,
        ],
        options=server_options(settings),
    )
    runs_pb2_grpc.add_RunServiceServicer_to_server(
        RunService(
            pool,
            hub,
            dispatch,
            max_item_ids=settings.max_item_ids,
            redispatch_seconds=settings.redispatch_seconds,
            max_watches=settings.max_watches,
            queue_name=settings.queue_name,
        ),
        server,
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)  # alive
    readiness = Readiness(
        pool,
        health,
        SERVICE_NAME,
        interval=settings.readiness_interval_seconds,
        timeout=min(2.0, settings.readiness_interval_seconds),
    )
    await readiness.start()  # the run service: SERVING while the database answers
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    credentials = server_credentials(settings)
    try:
        if credentials is None:
            port = server.add_insecure_port(grpc_addr)
        else:
            port = server.add_secure_port(grpc_addr, credentials)
    except RuntimeError:  # grpc's word for a port it cannot bind
        port = 0
    if port == 0:
        await readiness.stop()
        raise OSError(errno.EADDRINUSE, f"cannot listen on {grpc_addr}: address in use")
    await server.start()
    running = RunningServer(server, port, pool, hub, health, dispatch, readiness)
    if settings.metrics_addr is not None:
        metrics.watch_streams.set_function(lambda: hub.watcher_count)
        running.queue_gauges = QueueGauges(pool, asyncio.get_running_loop(), timeout=2.0)
        REGISTRY.register(running.queue_gauges)
        try:
            running.metrics_server = serve_metrics(settings.metrics_addr)
        except OSError:
            await running.stop(grace=0)
            raise
    return running


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """gRPC core keeps calls that arrived but that grpc.aio (which accepts
    one at a time) has not yet taken in a pending queue; past 1,000 of them
    it drops calls at random, all past 3,000, and the client sees CANCELLED
    with no message. A burst of WatchRun openings (thousands of streams at
    once) must wait there instead: the limit of watches is RUNSVC_MAX_WATCHES,
    enforced with RESOURCE_EXHAUSTED once a call is taken."""
    soft = max(1000, settings.max_watches)
    return [
        ("grpc.server.max_pending_requests", soft),
        ("grpc.server.max_pending_requests_hard_limit", 2 * soft),
    ]


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from the settings' files; mutual TLS when a client CA is given."""
    if not settings.tls_cert or not settings.tls_key:
        return None
    with open(settings.tls_cert, "rb") as cert, open(settings.tls_key, "rb") as key:
        pair = (key.read(), cert.read())
    client_ca = None
    if settings.tls_client_ca:
        with open(settings.tls_client_ca, "rb") as ca:
            client_ca = ca.read()
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


# Objects a collection of the youngest generation waits for (Python's default
# is 700). Thousands of open streams keep a few hundred thousand objects
# alive; the default has the collector walk them over and over while a change
# fans out to them (p50 of 5,000 watchers: 260 ms with the default, 140 ms
# without collections; benchmarks/bench_request_path.py).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Once the server is up: what it made to start (modules, the pool,
    protobuf descriptors) is never collected, so it leaves the collector's
    generations (gc.freeze); collections run after more allocations."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


async def serve(settings: Settings, grpc_addr: str) -> None:
    """Runs until SIGINT or SIGTERM, then drains in-flight calls."""
    running = await start_server(settings, grpc_addr)
    tune_gc()
    host = grpc_addr.rsplit(":", 1)[0]
    # Tests and supervisors read this line to learn the port (also with :0).
    mode = "plaintext"
    if settings.tls_cert:
        mode = "mutual TLS" if settings.tls_client_ca else "TLS"
    print(f"runsvc gRPC listening on {host}:{running.port} ({mode})", flush=True)
    if running.metrics_port is not None:
        metrics_host = settings.metrics_addr.rsplit(":", 1)[0].strip("[]")
        print(f"runsvc metrics on {url(metrics_host, running.metrics_port)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await running.stop()
