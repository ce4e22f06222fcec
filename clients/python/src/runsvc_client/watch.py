"""How a watch resumes, written once for both clients (no I/O here): the
request to open next, what a delivered state changes, and whether a broken
stream is reopened (after how long) or its error raised."""

from __future__ import annotations

import time

import grpc
from tenantpilot.runs.v1 import runs_pb2

from runsvc_client.errors import from_rpc_error, resume_delay
from runsvc_client.requests import watch_run_request


class WatchResume:
    """One watch_run call: the last version seen and the deadline of the whole watch."""

    def __init__(
        self, tenant: str, run_type: str, run_id: str, after_version: int | None, timeout: float
    ) -> None:
        self._address = (tenant, run_type, run_id)
        self._deadline = time.monotonic() + timeout
        self._last = after_version
        self._delivered = False  # any state delivered by this watch
        self._idle = 0  # reopened streams in a row that delivered nothing
        self._progressed = False  # the current stream delivered a state

    def request(self) -> runs_pb2.WatchRunRequest:
        """The request of the next stream: only states after the last one seen."""
        self._progressed = False
        return watch_run_request(*self._address, self._last)

    def remaining(self) -> float:
        """The deadline of the next stream: what is left of the whole watch."""
        return max(self._deadline - time.monotonic(), 0.0)

    def seen(self, run: runs_pb2.RunRecord) -> None:
        self._progressed = self._delivered = True
        self._last = run.version

    def reopen_after(self, rpc_error: grpc.RpcError) -> float:
        """Seconds to wait before reopening the broken stream; raises its
        typed error when it is not to be reopened."""
        error = from_rpc_error(rpc_error)
        self._idle = 0 if self._progressed else self._idle + 1
        delay = resume_delay(error, self._delivered, self._idle, self._deadline)
        if delay is None:
            raise error from None
        return delay
