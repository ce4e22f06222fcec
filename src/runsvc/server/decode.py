"""Requests whose message does not parse (a string that is not UTF-8, a
truncated field): INVALID_ARGUMENT with a plain message and one log line,
instead of grpc's UNKNOWN naming a Python exception after a traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

MESSAGE = "the request message does not parse (for example, a string that is not UTF-8)"


class Unparsable:
    """Stands for a request message that did not parse."""


_UNPARSABLE = Unparsable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return _UNPARSABLE

    return deserialize


class DecodeInterceptor(grpc.aio.ServerInterceptor):
    """Outermost interceptor: turns an unparsable request into INVALID_ARGUMENT
    before any other interceptor or the servicer sees it."""

    def __init__(self) -> None:
        # The tolerant handler of each method, made once.
        self._tolerant: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        method = handler_call_details.method
        tolerant = self._tolerant.get(method)
        if tolerant is None:
            tolerant = self._tolerant[method] = _tolerant_handler(method, handler)
        return tolerant


def _tolerant_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    deserializer = _tolerant(handler.request_deserializer)

    async def refuse(context: grpc.aio.ServicerContext) -> None:
        log.info("refused %s: the request message does not parse", method)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MESSAGE)

    if handler.unary_unary is not None:
        behaviour = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request is _UNPARSABLE:
                await refuse(context)
            return await behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )

    stream_behaviour = handler.unary_stream

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if request is _UNPARSABLE:
            await refuse(context)
        async for response in stream_behaviour(request, context):
            yield response

    return grpc.unary_stream_rpc_method_handler(
        stream,
        request_deserializer=deserializer,
        response_serializer=handler.response_serializer,
    )
