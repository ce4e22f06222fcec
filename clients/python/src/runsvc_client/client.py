"""RunsClient: the blocking client over the generated stubs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any

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
from runsvc_client.errors import from_rpc_error
from runsvc_client.requests import (
    get_run_request,
    list_run_items_request,
    list_runs_request,
    start_run_request,
)
from runsvc_client.watch import WatchResume


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
        return self._call(self._stub.StartRun, request, timeout)

    def get_run(
        self, *, tenant: str, run_type: str, run_id: str, timeout: float | None = None
    ) -> runs_pb2.RunRecord:
        """The run's full current state."""
        request = get_run_request(tenant, run_type, run_id)
        return self._call(self._stub.GetRun, request, timeout).run

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
        watch = WatchResume(
            tenant,
            run_type,
            run_id,
            after_version,
            self.watch_timeout if timeout is None else timeout,
        )
        while True:
            stream = self._stub.WatchRun(
                watch.request(), timeout=watch.remaining(), metadata=self._metadata
            )
            try:
                for response in stream:
                    watch.seen(response.run)
                    yield response.run
                return
            except grpc.RpcError as error:
                delay = watch.reopen_after(error)
            finally:
                stream.cancel()
            time.sleep(delay)

    # -- operators' calls --

    def list_runs(
        self,
        *,
        tenant: str,
        run_types: Iterable[str] = (),
        statuses: Iterable[int | str] = (),
        target_object_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> runs_pb2.ListRunsResponse:
        """One page of the tenant's runs, newest first. Statuses by value or
        name ("running"); `page_size=0` means the server's default (50)."""
        request = list_runs_request(
            tenant,
            run_types=run_types,
            statuses=statuses,
            target_object_id=target_object_id,
            created_after=created_after,
            created_before=created_before,
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._stub.ListRuns, request, timeout)

    def iter_runs(self, **filters: Any) -> Iterator[runs_pb2.RunRecord]:
        """Every run `list_runs(**filters)` selects, page after page."""
        filters.pop("page_token", None)
        token = ""
        while True:
            page = self.list_runs(**filters, page_token=token)
            yield from page.runs
            token = page.next_page_token
            if not token:
                return

    def list_run_items(
        self,
        *,
        tenant: str,
        run_type: str,
        run_id: str,
        outcomes: Iterable[int | str] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> runs_pb2.ListRunItemsResponse:
        """One page of a run's items in order. Outcomes by value or name
        ("failed", "pending"); `page_size=0` means the server's default (100)."""
        request = list_run_items_request(
            tenant,
            run_type,
            run_id,
            outcomes=outcomes,
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._stub.ListRunItems, request, timeout)

    def iter_run_items(self, **filters: Any) -> Iterator[runs_pb2.RunItem]:
        """Every item `list_run_items(**filters)` selects, page after page."""
        filters.pop("page_token", None)
        token = ""
        while True:
            page = self.list_run_items(**filters, page_token=token)
            yield from page.items
            token = page.next_page_token
            if not token:
                return

    def cancel_run(
        self, *, tenant: str, run_type: str, run_id: str, timeout: float | None = None
    ) -> runs_pb2.RunRecord:
        """Cancels a queued run at once, a running one at its next batch
        boundary; the run after the call. FailedPrecondition for a run that
        already ended otherwise."""
        request = runs_pb2.CancelRunRequest(
            tenant_external_id=tenant, run_type=run_type, run_id=run_id
        )
        return self._call(self._stub.CancelRun, request, timeout).run

    def retry_run(
        self, *, tenant: str, run_type: str, run_id: str, timeout: float | None = None
    ) -> runs_pb2.RetryRunResponse:
        """Starts a run over the failed items of a failed or partial run
        (`run.retry_of_run_id` names it), or returns the active run with the
        same dedupe key (`reused`)."""
        request = runs_pb2.RetryRunRequest(
            tenant_external_id=tenant, run_type=run_type, run_id=run_id
        )
        return self._call(self._stub.RetryRun, request, timeout)

    def get_caller(self, *, timeout: float | None = None) -> runs_pb2.GetCallerResponse:
        """Who the token is: its name, role and tenant grants (no tenant needed)."""
        return self._call(self._stub.GetCaller, runs_pb2.GetCallerRequest(), timeout)

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

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
