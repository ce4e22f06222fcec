"""WatchRun as Server-Sent Events: one RunRecord JSON per event, the run
version as the event id, closed after the terminal state. The gRPC stream
lives exactly as long as the HTTP response: a client that disconnects
cancels it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any

import grpc
from starlette.types import Receive, Scope, Send
from tenantpilot.runs.v1 import runs_pb2

from runsvc_client.records import is_terminal, run_record
from runsvc_gateway.errors import from_rpc_error

log = logging.getLogger(__name__)

_END = object()


def event(run: runs_pb2.RunRecord) -> bytes:
    data = json.dumps(run_record(run), separators=(",", ":"))
    return f"id: {run.version}\ndata: {data}\n\n".encode()


class Watchers:
    """How many watch streams are open (shown by /healthz)."""

    def __init__(self) -> None:
        self.open = 0


class WatchStream:
    """An ASGI response for one opened WatchRun call whose first message
    (or end) has already been read."""

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall,
        first: runs_pb2.WatchRunResponse | None,
        *,
        heartbeat: float,
        watchers: Watchers,
    ) -> None:
        self._call = call
        self._first = first
        self._heartbeat = heartbeat
        self._watchers = watchers
        # Updates coalesce: a slow HTTP reader gets the latest state.
        self._pending: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._counted = False  # among the watchers' open streams

    def _put(self, item: Any) -> None:
        last = self._pending[-1] if self._pending else None
        if isinstance(last, runs_pb2.RunRecord) and isinstance(item, runs_pb2.RunRecord):
            self._pending[-1] = item
        else:
            self._pending.append(item)
        self._ready.set()

    async def _pump(self) -> None:
        try:
            # read(), not iteration: the first message was read() already,
            # and grpc.aio does not allow mixing the two.
            while (message := await self._call.read()) is not grpc.aio.EOF:
                self._put(message.run)
        except grpc.aio.AioRpcError as error:
            self._put(error)
        self._put(_END)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._watchers.open += 1
        self._counted = True
        try:
            await self._respond(receive, send)
        finally:
            self._call.cancel()
            self._uncount()

    def _uncount(self) -> None:
        """No longer an open watch: called before the last chunk goes out
        too, so that a client that has seen the end never finds it open."""
        if self._counted:
            self._counted = False
            self._watchers.open -= 1

    async def _respond(self, receive: Receive, send: Send) -> None:
        stream = asyncio.create_task(self._stream(send))
        disconnect = asyncio.create_task(_wait_disconnect(receive))
        try:
            done, _ = await asyncio.wait({stream, disconnect}, return_when=asyncio.FIRST_COMPLETED)
            if stream in done:
                try:
                    stream.result()
                except OSError:  # the client went away mid-write: nothing to answer
                    log.info("watch client disconnected")
        finally:
            for task in (stream, disconnect):
                task.cancel()
            await asyncio.gather(stream, disconnect, return_exceptions=True)

    async def _stream(self, send: Send) -> None:
        async def body(chunk: bytes, *, more: bool = True) -> None:
            if not more:
                self._uncount()
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        if self._first is None:  # nothing newer than Last-Event-ID, and it has ended
            await body(b"retry: 2000\n\n", more=False)
            return
        await body(b"retry: 2000\n\n" + event(self._first.run))
        if is_terminal(self._first.run):
            await body(b"", more=False)
            return
        pump = asyncio.create_task(self._pump())
        try:
            while True:
                try:
                    await asyncio.wait_for(self._ready.wait(), self._heartbeat)
                except TimeoutError:
                    await body(b": keepalive\n\n")
                    continue
                self._ready.clear()
                while self._pending:
                    item = self._pending.popleft()
                    if isinstance(item, runs_pb2.RunRecord):
                        await body(event(item))
                        if is_terminal(item):
                            await body(b"", more=False)
                            return
                    elif isinstance(item, grpc.aio.AioRpcError):
                        await body(_error_event(item))
                    else:  # _END: the stream ended before a terminal state
                        await body(b"", more=False)
                        return
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)


def _error_event(error: grpc.aio.AioRpcError) -> bytes:
    """A stream cut short (deadline, server restart): the client reconnects
    with Last-Event-ID. A deadline is the normal end of a long watch."""
    if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return b""
    http = from_rpc_error(error)
    log.warning("watch stream ended: %s", error.code().name)
    data = json.dumps({"error": {"code": http.code, "message": http.message}})
    return f"event: error\ndata: {data}\n\n".encode()


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
