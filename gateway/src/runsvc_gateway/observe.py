"""The gateway's observability, as one ASGI middleware around the app: per
request the request id (the caller's X-Request-Id when sane, else a new one;
echoed in the response, passed to the server as gRPC metadata), the log
context of everything the request logs, one access line, and — with
--metrics-addr — `http_requests_total` and `http_request_duration_seconds`
by method, route template and status, and the open SSE streams."""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runsvc_observe import request_id
from runsvc_observe.logging import log_context

log = logging.getLogger("runsvc_gateway.access")

_LABELS = ["method", "route", "status"]
http_requests = Counter("http_requests_total", "HTTP requests answered.", _LABELS)
http_request_seconds = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to its response's end (a watch: its whole stream).",
    _LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
sse_streams = Gauge("runsvc_gateway_sse_streams", "Open SSE watch streams.")

# Paths no route matched are one label value, not one per path.
UNMATCHED = "unmatched"
_HEADER = request_id.HEADER.encode()


def _caller_request_id(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == _HEADER:
            return request_id.from_caller(value.decode("latin-1"))
    return request_id.new()


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, *, with_metrics: bool, access_log: bool = True) -> None:
        self.app = app
        self.with_metrics = with_metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _caller_request_id(scope)
        echoed = (_HEADER, rid.encode())
        status = 500  # what the client sees if the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        started = time.perf_counter()
        with log_context(request_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        method = scope["method"]
        if self.with_metrics:
            labels = (method, template, str(status))
            http_requests.labels(*labels).inc()
            http_request_seconds.labels(*labels).observe(seconds)
        if self.access_log:
            log.info(
                "%s %s %d %.1f ms",
                method,
                template,
                status,
                seconds * 1000,
                extra={"method": method, "route": template, "status": status},
            )
