"""AsyncRunsClient: the asyncio client (grpc.aio) with the same calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from types import TracebackType

import grpc
import grpc.aio
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc_client.channel import (
    DEFAULT_TIMEOUT,
    DEFAULT_WATCH_TIMEOUT,
    RetryPolicy,
    TLSOption,
    auth_metadata,
    channel_args,
)
from runsvc_client.errors import from_rpc_error, resume_delay
from runsvc_client.requests import get_run_request, start_run_request, watch_run_request


class AsyncRunsClient:
    """The asyncio twin of `RunsClient`; same arguments, awaitable calls, and
    `watch_run` an async iterator. Create it inside the running event loop."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: TLSOption = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        watch_timeout: float = DEFAULT_WATCH_TIMEOUT,
        retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 (frozen)
    ) -> None:
        credentials, options = channel_args(tls, retry)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._stub = runs_pb2_grpc.RunServiceStub(self._channel)
        self._metadata = auth_metadata(token)
        self.default_timeout = default_timeout
        self.watch_timeout = watch_timeout

    async def start_run(
        self,
        *,
        tenant: str,
        run_type: str,
        target_object_id: str | None = None,
        payload_hash: str | None = None,
        item_ids: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> runs_pb2.StartRunResponse:
        request = start_run_request(
            tenant,
            run_type,
            target_object_id=target_object_id,
            payload_hash=payload_hash,
            item_ids=item_ids,
        )
        try:
            return await self._stub.StartRun(
                request, timeout=self._timeout(timeout), metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def get_run(
        self, *, tenant: str, run_type: str, run_id: str, timeout: float | None = None
    ) -> runs_pb2.RunRecord:
        request = get_run_request(tenant, run_type, run_id)
        try:
            response = await self._stub.GetRun(
                request, timeout=self._timeout(timeout), metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return response.run

    async def watch_run(
        self,
        *,
        tenant: str,
        run_type: str,
        run_id: str,
        after_version: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[runs_pb2.RunRecord]:
        """As `RunsClient.watch_run`: resumes a stream broken by UNAVAILABLE
        from the last version seen, within the same deadline."""
        deadline = time.monotonic() + (self.watch_timeout if timeout is None else timeout)
        last = after_version
        delivered = False  # any state delivered by this watch
        idle = 0  # reopened streams in a row that delivered nothing
        delay = 0.0
        while True:
            if delay:
                await asyncio.sleep(delay)
            request = watch_run_request(tenant, run_type, run_id, last)
            call = self._stub.WatchRun(
                request, timeout=max(deadline - time.monotonic(), 0), metadata=self._metadata
            )
            progressed = False
            try:
                async for response in call:
                    progressed = delivered = True
                    last = response.run.version
                    yield response.run
                return
            except grpc.RpcError as rpc_error:
                error = from_rpc_error(rpc_error)
                idle = 0 if progressed else idle + 1
                delay = resume_delay(error, delivered, idle, deadline)
                if delay is None:
                    raise error from None
            finally:
                call.cancel()

    def _timeout(self, timeout: float | None) -> float:
        return self.default_timeout if timeout is None else timeout

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncRunsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
