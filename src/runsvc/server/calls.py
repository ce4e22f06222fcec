"""Every RPC's steps, in one layer around the servicer: observed first (the
request id, metrics: refusals are counted and logged too), then an
unparsable request refused, then the caller authenticated and authorised.

One interceptor builds each method's handler once. A call then runs one
wrapper, not one per step, and a stream's wrapper writes each message
itself: with 5,000 WatchRun streams, a change reaches each watcher through
the servicer's generator alone instead of four nested ones, and each open
stream holds fewer frames (benchmarks/bench_request_path.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from runsvc.observe.grpc_server import Observer
from runsvc.server import decode
from runsvc.server.auth import AuthGuard, refuse_all

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


class CallSteps(grpc.aio.ServerInterceptor):
    def __init__(self, observer: Observer, guard: AuthGuard) -> None:
        self._observer = observer
        self._guard = guard
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        stepped = self._handlers.get(method)
        if stepped is None:
            stepped = self._handlers[method] = self._with_steps(method, handler)
        return stepped

    def _with_steps(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        check = self._guard.check_for(method)
        if handler.request_streaming:
            # Reflection (public) as it is; any other is refused unchecked.
            return handler if check is None else refuse_all(handler)
        deserializer = decode.tolerant(handler.request_deserializer)

        async def admit(request: Any, context: grpc.aio.ServicerContext, metadata: Any) -> None:
            """The steps before the servicer: each refuses by aborting."""
            if request is decode.UNPARSABLE:
                await decode.refuse_unparsable(method, context)
            if check is not None:
                await check(request, context, metadata)

        if handler.unary_unary is not None:
            behaviour = handler.unary_unary
            observing = self._observer.method(method, "unary")

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                # Read once: grpc builds the tuple anew on every read.
                metadata = context.invocation_metadata()
                with observing(context, metadata):
                    await admit(request, context, metadata)
                    return await behaviour(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )

        stream_behaviour = handler.unary_stream
        stream_observing = self._observer.method(method, "server_stream")

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> None:
            # A coroutine that writes each message (grpc.aio's writer API),
            # not a generator that grpc iterates: one generator less per message.
            metadata = context.invocation_metadata()
            with stream_observing(context, metadata):
                await admit(request, context, metadata)  # before the first message
                # Closed however the stream ends (a caller gone mid-write too),
                # so that the servicer's cleanup runs now, not at collection.
                async with contextlib.aclosing(stream_behaviour(request, context)) as responses:
                    async for response in responses:
                        await context.write(response)

        return grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
