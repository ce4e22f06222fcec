"""Builds and runs the gRPC server process: grpc.aio, RunService, health,
reflection, one watch hub and one connection pool per process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from psycopg_pool import AsyncConnectionPool
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.broker import Dispatcher, build_broker
from runsvc.config import Settings
from runsvc.redact import describe_exception
from runsvc.server.auth import Authenticator, AuthInterceptor
from runsvc.server.decode import DecodeInterceptor
from runsvc.server.servicer import RunService
from runsvc.server.watch_hub import WatchHub
from runsvc.store.runs import run_dispatch_due_now

log = logging.getLogger(__name__)

SERVICE_NAME = runs_pb2.DESCRIPTOR.services_by_name["RunService"].full_name


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    pool: AsyncConnectionPool
    hub: WatchHub
    health: HealthServicer
    dispatcher: Dispatcher
    sender: ThreadPoolExecutor

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.hub.stop()
        await self.pool.close()
        self.sender.shutdown(wait=True)
        self.dispatcher.close()


async def start_server(
    settings: Settings,
    grpc_addr: str,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> RunningServer:
    """Starts the server; an unparsable request is refused first, then
    authentication runs, then `interceptors`."""
    pool = AsyncConnectionPool(
        settings.database_url,
        min_size=2,
        max_size=20,
        # The pid in the name lets operators (and tests) tell processes apart.
        kwargs={"autocommit": True, "application_name": f"runsvc-server:{os.getpid()}"},
        open=False,
        name="runsvc-server",
    )
    await pool.open(wait=True, timeout=30)
    hub = WatchHub(settings.database_url, pool)
    await hub.start()

    dispatcher = Dispatcher(build_broker(settings.broker_url), settings.queue_name)
    # Broker clients block; sending happens off the event loop, after the
    # run is committed, and StartRun does not wait for it.
    sender = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dispatch")

    loop = asyncio.get_running_loop()

    async def make_due(run_id: uuid.UUID) -> None:
        try:
            async with pool.connection() as conn:
                await run_dispatch_due_now(conn, run_id)
        except Exception as exc:  # the run's backoff still brings the reaper
            log.warning("could not mark run %s due: %s", run_id, describe_exception(exc))

    def dispatch(run_id: uuid.UUID) -> None:
        def send() -> None:
            try:
                dispatcher.send(run_id)
            except Exception as exc:
                # Due at once: a reaper sends it at its next pass after the
                # broker is back, not after the redispatch backoff.
                log.warning(
                    "dispatch of run %s failed, the reaper will retry: %s",
                    run_id,
                    describe_exception(exc),
                )
                asyncio.run_coroutine_threadsafe(make_due(run_id), loop)

        sender.submit(send)

    authenticator = Authenticator(
        pool,
        cache_seconds=settings.auth_cache_seconds,
        touch_seconds=settings.auth_touch_seconds,
    )
    server = grpc.aio.server(
        interceptors=[DecodeInterceptor(), AuthInterceptor(authenticator), *interceptors]
    )
    runs_pb2_grpc.add_RunServiceServicer_to_server(
        RunService(
            pool,
            hub,
            dispatch,
            max_item_ids=settings.max_item_ids,
            redispatch_seconds=settings.redispatch_seconds,
        ),
        server,
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    credentials = server_credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(grpc_addr)
    else:
        port = server.add_secure_port(grpc_addr, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {grpc_addr}")
    await server.start()
    return RunningServer(server, port, pool, hub, health, dispatcher, sender)


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


async def serve(settings: Settings, grpc_addr: str) -> None:
    """Runs until SIGINT or SIGTERM, then drains in-flight calls."""
    running = await start_server(settings, grpc_addr)
    host = grpc_addr.rsplit(":", 1)[0]
    # Tests and supervisors read this line to learn the port (also with :0).
    mode = "plaintext"
    if settings.tls_cert:
        mode = "mutual TLS" if settings.tls_client_ca else "TLS"
    print(f"runsvc gRPC listening on {host}:{running.port} ({mode})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await running.stop()
