"""The gRPC server's observing interceptor, outermost of all: per RPC it
takes the caller's `x-request-id` (or makes one), echoes it in the response
trailers, puts it in the log context of everything the RPC logs, and — with
metrics on — counts the RPC started and handled by code and times it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from runsvc.observe.metrics import server as metrics
from runsvc_observe import request_id
from runsvc_observe.logging import bind

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


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


class ObserveInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, *, with_metrics: bool) -> None:
        self._with_metrics = with_metrics
        # The observed handler of each method, made once: the request id is
        # read from each call's own context, so nothing is built per call.
        self._observed: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        full_method = handler_call_details.method
        observed = self._observed.get(full_method)
        if observed is None:
            observed = self._observed[full_method] = self._observe(full_method, handler)
        return observed

    def _observe(self, full_method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        def method(grpc_type: str) -> _Method | None:
            return _Method(full_method, grpc_type) if self._with_metrics else None

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _observe_unary(handler.unary_unary, method("unary")),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _observe_stream(handler.unary_stream, method("server_stream")),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming methods exist (the auth interceptor refuses them)


@contextlib.asynccontextmanager
async def _observing(
    context: grpc.aio.ServicerContext, method: _Method | None
) -> AsyncIterator[None]:
    """One RPC from its start to its status: the request id in its log
    context and response trailers, and with metrics on its count and time.
    Trailers, not headers: grpc.aio sends headers set by the handler as a
    write of their own (a tenth of a millisecond per call), while trailers
    go with the status, which every call sends anyway."""
    rid = _caller_request_id(context.invocation_metadata())
    bind(request_id=rid)  # this RPC's task only
    context.set_trailing_metadata(((request_id.HEADER, rid),))
    if method is not None:
        method.started.inc()
    started = time.perf_counter()
    code = grpc.StatusCode.UNKNOWN.name
    try:
        yield
        code = _code_name(context, grpc.StatusCode.OK)
    except (asyncio.CancelledError, GeneratorExit):  # the caller went away
        code = grpc.StatusCode.CANCELLED.name
        raise
    except BaseException:  # an abort (its code is on the context) or a crash
        code = _code_name(context, grpc.StatusCode.UNKNOWN)
        raise
    finally:
        if method is not None:
            method.seconds.observe(time.perf_counter() - started)
            method.handled(code).inc()


def _observe_unary(behaviour: Behaviour, method: _Method | None) -> Behaviour:
    async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _observing(context, method):
            return await behaviour(request, context)

    return observed


def _observe_stream(behaviour: Behaviour, method: _Method | None) -> Behaviour:
    async def observed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with _observing(context, method):
            async for response in behaviour(request, context):
                yield response

    return observed
