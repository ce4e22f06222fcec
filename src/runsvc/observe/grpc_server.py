"""What the gRPC server observes of every RPC, the outermost of its steps
(runsvc.server.calls): per RPC it takes the caller's `x-request-id` (or
makes one), echoes it in the response trailers, puts it in the log context
of everything the RPC logs, and — with metrics on — counts the RPC started
and handled by code and times it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import grpc

from runsvc.observe.metrics import server as metrics
from runsvc_observe import request_id
from runsvc_observe.logging import bind


class _Method:
    """The metric series of one method, resolved once (not looked up per call)."""

    def __init__(self, full_method: str, grpc_type: str) -> None:
        service, _, name = full_method.lstrip("/").rpartition("/")
        self.labels = (grpc_type, service, name)
        self.started = metrics.grpc_started.labels(*self.labels)
        self.seconds = metrics.grpc_handling_seconds.labels(*self.labels)
        self._handled: dict[str, Any] = {}

    def handled(self, code: str) -> Any:
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = metrics.grpc_handled.labels(*self.labels, code)
        return child


def _code_name(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return default.name if code is None else grpc.StatusCode(code).name  # type: ignore[call-arg]


def _caller_request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == request_id.HEADER:
            return request_id.from_caller(value if isinstance(value, str) else None)
    return request_id.new()


class Observer:
    """What observing needs of each method, resolved once per method."""

    def __init__(self, *, with_metrics: bool) -> None:
        self._with_metrics = with_metrics

    def method(
        self, full_method: str, grpc_type: str
    ) -> Callable[[grpc.aio.ServicerContext, Any], contextlib.AbstractContextManager[None]]:
        """`observing(context, metadata)` for the calls of one method (the
        call's invocation metadata, read once for all the steps; grpc_type is
        "unary" or "server_stream", the label of the metrics)."""
        method = _Method(full_method, grpc_type) if self._with_metrics else None
        return functools.partial(_Observing, method=method)


class _Observing:
    """One RPC from its start to its status: the request id in its log
    context and response trailers, and with metrics on its count and time.
    Trailers, not headers: grpc.aio sends headers set by the handler as a
    write of their own (a tenth of a millisecond per call), while trailers
    go with the status, which every call sends anyway. A class rather than a
    generator-based context manager: every open stream holds one. Not an
    async one: nothing in it waits, and each call would make two coroutines
    more."""

    __slots__ = ("_context", "_metadata", "_method", "_started")

    def __init__(
        self, context: grpc.aio.ServicerContext, metadata: Any, method: _Method | None
    ) -> None:
        self._context = context
        self._metadata = metadata
        self._method = method
        self._started = 0.0

    def __enter__(self) -> None:
        rid = _caller_request_id(self._metadata)
        bind(request_id=rid)  # this RPC's task only
        self._context.set_trailing_metadata(((request_id.HEADER, rid),))
        if self._method is not None:
            self._method.started.inc()
        self._started = time.perf_counter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        method = self._method
        if method is None:
            return
        if error is None:
            code = _code_name(self._context, grpc.StatusCode.OK)
        elif isinstance(error, (asyncio.CancelledError, GeneratorExit)):  # the caller went away
            code = grpc.StatusCode.CANCELLED.name
        else:  # an abort (its code is on the context) or a crash
            code = _code_name(self._context, grpc.StatusCode.UNKNOWN)
        method.seconds.observe(time.perf_counter() - self._started)
        method.handled(code).inc()
