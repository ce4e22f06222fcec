"""The ASGI app: the contract's routes, its extensions (watch; the operators'
list, items, cancel and retry), the served description and the probes,
over one long-lived gRPC channel."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc_client import TLS
from runsvc_client.records import caller, run_item_list, run_list, run_record, start_response
from runsvc_gateway import contract, inputs
from runsvc_gateway.console import console_routes
from runsvc_gateway.errors import HttpError, error_response, from_rpc_error
from runsvc_gateway.observe import ObserveMiddleware, sse_streams
from runsvc_gateway.sse import Watchers, WatchStream
from runsvc_observe.tracing import tracing_enabled

log = logging.getLogger(__name__)

PREFIX = "/admin"
RUN_SERVICE = runs_pb2.DESCRIPTOR.services_by_name["RunService"].full_name


@dataclass(frozen=True)
class Settings:
    grpc_target: str
    # Deadline of every unary call; a down backend answers 503 well before.
    call_timeout: float = 10.0
    # A watch is cut after this long; SSE clients reconnect with Last-Event-ID.
    watch_timeout: float = 3600.0
    heartbeat_seconds: float = 15.0
    ready_timeout: float = 2.0
    max_body_bytes: int = inputs.DEFAULT_MAX_BODY_BYTES
    # TLS towards the gRPC server (a CA to trust; a client certificate for
    # mutual TLS); None: plaintext.
    tls: TLS | None = None
    # Prometheus series (served by the CLI's --metrics-addr), and one access
    # line per request.
    metrics: bool = False
    access_log: bool = True


# The channel reconnects soon after the backend comes back (the default
# backoff grows to two minutes, answering 503 all the while).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30000),
]


class Backend:
    """The one gRPC channel all requests share, and its stubs."""

    def __init__(self, target: str, tls: TLS | None = None) -> None:
        # With tracing on, the calls carry the request's trace context.
        interceptors = _tracing_interceptors()
        if tls is None:
            self.channel = grpc.aio.insecure_channel(
                target, options=CHANNEL_OPTIONS, interceptors=interceptors
            )
        else:
            self.channel = grpc.aio.secure_channel(
                target,
                tls.credentials(),
                options=CHANNEL_OPTIONS + tls.channel_options(),
                interceptors=interceptors,
            )
        self.runs = runs_pb2_grpc.RunServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def close(self) -> None:
        await self.channel.close(grace=1.0)


def _tracing_interceptors() -> list[grpc.aio.ClientInterceptor] | None:
    if not tracing_enabled():
        return None
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return aio_client_interceptors()


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend: Backend | None = None
        self.watchers = Watchers()

    @property
    def runs(self) -> runs_pb2_grpc.RunServiceStub:
        assert self.backend is not None, "the app's lifespan has not started"
        return self.backend.runs

    # -- the contract --

    async def start_run(self, request: Request) -> Response:
        tenant, run_type, _ = inputs.address(request, with_run_id=False)
        inputs.check_start_run_type(run_type)
        metadata = inputs.metadata(request)
        body = await inputs.read_body(request, self.settings.max_body_bytes)
        options = inputs.start_options(request, body)
        response = await self._call(
            self.runs.StartRun,
            runs_pb2.StartRunRequest(tenant_external_id=tenant, run_type=run_type, options=options),
            metadata,
        )
        return JSONResponse(start_response(response), status_code=200 if response.reused else 201)

    async def get_run(self, request: Request) -> Response:
        tenant, run_type, run_id = inputs.address(request, with_run_id=True)
        response = await self._call(
            self.runs.GetRun,
            runs_pb2.GetRunRequest(tenant_external_id=tenant, run_type=run_type, run_id=run_id),
            inputs.metadata(request),
        )
        return JSONResponse(run_record(response.run))

    async def _call(self, method, request, metadata):  # type: ignore[no-untyped-def]
        try:
            return await method(request, metadata=metadata, timeout=self.settings.call_timeout)
        except grpc.aio.AioRpcError as error:
            raise _logged(from_rpc_error(error), error) from None

    # -- extensions --

    async def watch_run(self, request: Request) -> Response | WatchStream:
        tenant, run_type, run_id = inputs.address(request, with_run_id=True)
        watch = runs_pb2.WatchRunRequest(
            tenant_external_id=tenant, run_type=run_type, run_id=run_id
        )
        after = inputs.last_event_id(request)
        if after is not None:
            watch.after_version = after
        call = self.runs.WatchRun(
            watch, metadata=inputs.metadata(request), timeout=self.settings.watch_timeout
        )
        try:
            # Errors (not found, invalid, unauthenticated) become an HTTP
            # status before the stream starts.
            first = await call.read()
        except grpc.aio.AioRpcError as error:
            raise _logged(from_rpc_error(error), error) from None
        except BaseException:
            call.cancel()
            raise
        if request.method == "HEAD":  # the status and headers only, no stream
            call.cancel()
            return Response(status_code=200, media_type="text/event-stream")
        return WatchStream(
            call,
            None if first is grpc.aio.EOF else first,
            heartbeat=self.settings.heartbeat_seconds,
            watchers=self.watchers,
        )

    # -- the operators' extensions --

    async def list_runs(self, request: Request) -> Response:
        tenant = inputs.address(request, with_run_id=False)[0]
        response = await self._call(
            self.runs.ListRuns, inputs.list_runs_request(request, tenant), inputs.metadata(request)
        )
        return JSONResponse(run_list(response))

    async def list_run_items(self, request: Request) -> Response:
        tenant, run_type, run_id = inputs.address(request, with_run_id=True)
        response = await self._call(
            self.runs.ListRunItems,
            inputs.list_items_request(request, tenant, run_type, run_id),
            inputs.metadata(request),
        )
        return JSONResponse(run_item_list(response))

    async def cancel_run(self, request: Request) -> Response:
        tenant, run_type, run_id = inputs.address(request, with_run_id=True)
        metadata = inputs.metadata(request)
        await inputs.no_body(request, self.settings.max_body_bytes)
        response = await self._call(
            self.runs.CancelRun,
            runs_pb2.CancelRunRequest(tenant_external_id=tenant, run_type=run_type, run_id=run_id),
            metadata,
        )
        return JSONResponse(run_record(response.run))

    async def retry_run(self, request: Request) -> Response:
        tenant, run_type, run_id = inputs.address(request, with_run_id=True)
        metadata = inputs.metadata(request)
        await inputs.no_body(request, self.settings.max_body_bytes)
        response = await self._call(
            self.runs.RetryRun,
            runs_pb2.RetryRunRequest(tenant_external_id=tenant, run_type=run_type, run_id=run_id),
            metadata,
        )
        return JSONResponse(start_response(response), status_code=200 if response.reused else 201)

    async def whoami(self, request: Request) -> Response:
        response = await self._call(
            self.runs.GetCaller, runs_pb2.GetCallerRequest(), inputs.metadata(request)
        )
        return JSONResponse(caller(response))

    async def openapi(self, request: Request) -> Response:
        return Response(contract.served_yaml(), media_type="application/yaml")

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "openWatches": self.watchers.open})

    async def readyz(self, request: Request) -> Response:
        assert self.backend is not None
        try:
            # The run service's own status: NOT_SERVING while its database is down.
            answer = await self.backend.health.Check(
                health_pb2.HealthCheckRequest(service=RUN_SERVICE),
                timeout=self.settings.ready_timeout,
            )
            ready = answer.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError as error:
            log.info("backend not ready: %s", error.code().name)
            ready = False
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


def _logged(http: HttpError, error: grpc.aio.AioRpcError) -> HttpError:
    if http.status >= 500:
        log.warning("backend call failed: %s -> %d", error.code().name, http.status)
    return http


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return error_response(exc)


async def _starlette_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    code = codes.get(exc.status_code, "BAD_REQUEST" if exc.status_code < 500 else "INTERNAL")
    message = {404: "no such route", 405: "method not allowed"}.get(exc.status_code, "bad request")
    return error_response(HttpError(exc.status_code, code, message), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error: %s", type(exc).__name__)
    return error_response(HttpError(500, "INTERNAL", "internal error"))


def create_app(settings: Settings) -> ASGIApp:
    gateway = Gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Created inside the server's event loop; closed at shutdown.
        gateway.backend = Backend(settings.grpc_target, settings.tls)
        try:
            yield
        finally:
            await gateway.backend.close()

    routes = [
        Route(PREFIX + contract.START_PATH, gateway.start_run, methods=["POST"]),
        Route(PREFIX + contract.GET_PATH, gateway.get_run, methods=["GET"]),
        Route(PREFIX + contract.WATCH_PATH, gateway.watch_run, methods=["GET"]),
        Route(PREFIX + contract.LIST_PATH, gateway.list_runs, methods=["GET"]),
        Route(PREFIX + contract.ITEMS_PATH, gateway.list_run_items, methods=["GET"]),
        Route(PREFIX + contract.CANCEL_PATH, gateway.cancel_run, methods=["POST"]),
        Route(PREFIX + contract.RETRY_PATH, gateway.retry_run, methods=["POST"]),
        Route(PREFIX + contract.WHOAMI_PATH, gateway.whoami, methods=["GET"]),
        Route(PREFIX + "/openapi.yaml", gateway.openapi, methods=["GET"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/readyz", gateway.readyz, methods=["GET"]),
        # Last: the API routes above are matched first and never pay for it.
        *console_routes(PREFIX + "/ui"),
    ]
    middleware = [
        Middleware(ObserveMiddleware, with_metrics=settings.metrics, access_log=settings.access_log)
    ]
    if tracing_enabled():
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        # Outermost: the access line and everything below are in the span.
        middleware.insert(0, Middleware(OpenTelemetryMiddleware, exclude_spans=["receive", "send"]))
    if settings.metrics:
        sse_streams.set_function(lambda: gateway.watchers.open)
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HttpError: _http_error,
            HTTPException: _starlette_error,
            Exception: _unexpected,
        },
    )
    app.state.gateway = gateway
    return app
