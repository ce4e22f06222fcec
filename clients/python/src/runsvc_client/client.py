"""RunsClient: the blocking client over the generated stubs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from types import TracebackType

import grpc
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


class RunsClient:
    """Calls tenantpilot.runs.v1.RunService at `target` ("host:port").

    - `token`: sent as `authorization: Bearer <token>` on every call.
    - `tls`: None for plaintext; CA bundle bytes (PEM), a `TLS` (CA, and a
      client certificate and key for mutual TLS) or grpc.ChannelCredentials.
    - `default_timeout`: seconds for StartRun and GetRun (each call may pass
      `timeout=`); `watch_timeout` for a whole WatchRun stream.
    - `retry`: the retry policy of StartRun and GetRun (UNAVAILABLE, with
      backoff, within the deadline); None turns retries off.

    Failures raise `runsvc_client.RunsError` subclasses.
    """

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
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._stub = runs_pb2_grpc.RunServiceStub(self._channel)
        self._metadata = auth_metadata(token)
        self.default_timeout = default_timeout
        self.watch_timeout = watch_timeout

    def start_run(
        self,
        *,
        tenant: str,
        run_type: str,
        target_object_id: str | None = None,
        payload_hash: str | None = None,
        item_ids: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> runs_pb2.StartRunResponse:
        """Starts a run, or returns the active one with the same dedupe key
        (`reused`). `item_ids=None` means the run type's default set."""
        request = start_run_request(
            tenant,
            run_type,
            target_object_id=target_object_id,
            payload_hash=payload_hash,
            item_ids=item_ids,
        )
        try:
            return self._stub.StartRun(
                request, timeout=self._timeout(timeout), metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def get_run(
        self, *, tenant: str, run_type: str, run_id: str, timeout: float | None = None
    ) -> runs_pb2.RunRecord:
        """The run's full current state."""
        request = get_run_request(tenant, run_type, run_id)
        try:
            response = self._stub.GetRun(
                request, timeout=self._timeout(timeout), metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return response.run

    def watch_run(
        self,
        *,
        tenant: str,
        run_type: str,
        run_id: str,
        after_version: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[runs_pb2.RunRecord]:
        """The current state (or only states after `after_version`), then one
        record per change; ends after the terminal state. A stream that broke
        with UNAVAILABLE after delivering states is resumed from the last
        version seen (no repeats), within the same deadline. Closing the
        iterator early cancels the stream."""
        deadline = time.monotonic() + (self.watch_timeout if timeout is None else timeout)
        last = after_version
        delivered = False  # any state delivered by this watch
        idle = 0  # reopened streams in a row that delivered nothing
        delay = 0.0
        while True:
            if delay:
                time.sleep(delay)
            request = watch_run_request(tenant, run_type, run_id, last)
            stream = self._stub.WatchRun(
                request, timeout=max(deadline - time.monotonic(), 0), metadata=self._metadata
            )
            progressed = False
            try:
                for response in stream:
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
                stream.cancel()

    def _timeout(self, timeout: float | None) -> float:
        return self.default_timeout if timeout is None else timeout

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RunsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
