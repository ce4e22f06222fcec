"""Calls to Microsoft Graph (httpx): single requests and JSON $batch of up
to 20, each paced by the tenant's budget and sent with the tenant's token.

A 429 or 503 (of the whole call, or of one request in a batch) pauses the
tenant everywhere, then the throttled requests go again: waiting out
throttling is part of the call, never a failed attempt. Every call has a
deadline (a time.monotonic() instant); when the tenant's turn would come
after it, the call raises GraphThrottled with the time still to wait.
"""

from __future__ import annotations

import email.utils
import logging
import os
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from typing import Any

import httpx
from psycopg_pool import ConnectionPool

from runsvc.source.graph.auth import AUTH_FAILED, TokenProvider
from runsvc.source.graph.errors import GraphRefused, GraphThrottled, GraphTimeout, GraphUnavailable
from runsvc.source.graph.pacing import Pacer
from runsvc.source.graph.settings import GraphSettings

log = logging.getLogger(__name__)

MAX_BATCH = 20
THROTTLED = frozenset({429, 503})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# With less time left than this a call is not started: it could not finish.
MIN_CALL_SECONDS = 0.05


@dataclass(frozen=True)
class Request:
    """One Graph request; `url` is relative to the API version (/deviceManagement/...)."""

    method: str
    url: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def retry_after_seconds(headers: dict[str, str]) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date), if given."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """The system's trust store, plus RUNSVC_GRAPH_CA_FILE if set."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(ca_file)
    return context


class GraphClient:
    def __init__(
        self, settings: GraphSettings, pool: ConnectionPool, *, max_connections: int = 256
    ) -> None:
        self.settings = settings
        self.http = httpx.Client(
            verify=ssl_context(settings.ca_file),
            timeout=settings.timeout_seconds,
            # Keep every connection alive (httpx keeps 20 by default): with
            # more worker threads than that, each call would pay a TLS handshake.
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=30,
            ),
            headers={
                # The pid lets the emulator (and Graph's own logs) tell workers apart.
                "User-Agent": f"runsvc/{package_version('runsvc')} (pid {os.getpid()})",
                "Accept": "application/json",
            },
        )
        self.tokens = TokenProvider(settings, self.http)
        self.pacer = Pacer(pool, settings.budget)

    def close(self) -> None:
        self.http.close()

    # --- what callers use ------------------------------------------------

    def send(
        self, graph_tenant_id: str, version: str, request: Request, *, deadline: float
    ) -> Response:
        """One request on its own (a list page, for instance)."""
        (response,) = self._paced(graph_tenant_id, version, [request], deadline, self._send_one)
        return response

    def batch(
        self, graph_tenant_id: str, version: str, requests: list[Request], *, deadline: float
    ) -> list[Response]:
        """Up to 20 requests in one JSON $batch; responses in request order."""
        if not 0 < len(requests) <= MAX_BATCH:
            raise ValueError(f"a $batch carries 1 to {MAX_BATCH} requests, not {len(requests)}")
        return self._paced(graph_tenant_id, version, requests, deadline, self._send_batch)

    def page(
        self, graph_tenant_id: str, version: str, url: str, *, deadline: float
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a collection, and the (relative) URL of the next one."""
        response = self.send(graph_tenant_id, version, Request("GET", url), deadline=deadline)
        if not response.ok or not isinstance(response.body, dict):
            raise refusal(response)
        next_url = response.body.get("@odata.nextLink")
        if next_url is not None:
            # The token goes to Graph alone, whatever a link says.
            prefix = f"{self.settings.graph_url}/{version}/"
            if not next_url.startswith(prefix):
                raise GraphUnavailable("Graph sent a next link to another place")
            next_url = next_url[len(prefix) - 1 :]
        return response.body.get("value", []), next_url

    # --- pacing and throttling, around both ------------------------------

    def _paced(
        self,
        graph_tenant_id: str,
        version: str,
        requests: list[Request],
        deadline: float,
        send: Callable[[str, str, list[Request], float], list[Response]],
    ) -> list[Response]:
        results: dict[int, Response] = {}
        pending = list(range(len(requests)))
        refreshed = False
        while pending:
            batch = [requests[i] for i in pending]
            wait = self.pacer.take(
                graph_tenant_id,
                requests=len(batch),
                writes=sum(1 for r in batch if r.method in WRITE_METHODS),
            )
            if time.monotonic() + wait + MIN_CALL_SECONDS > deadline:
                raise GraphThrottled(wait)
            if wait > 0:
                time.sleep(wait)
            token = self.tokens.token(graph_tenant_id)
            responses = send(version, token, batch, deadline)
            if any(r.status == 401 for r in responses):
                # Expired or revoked early: drop it and get a new one, once.
                self.tokens.discard(graph_tenant_id, token)
                if refreshed:
                    raise GraphRefused(AUTH_FAILED)
                refreshed = True
            throttled = [r for r in responses if r.status in THROTTLED]
            if throttled:
                self._pause(graph_tenant_id, throttled, len(batch))
            still = []
            for index, response in zip(pending, responses, strict=True):
                if response.status in THROTTLED or response.status == 401:
                    still.append(index)
                else:
                    results[index] = response
            pending = still
        return [results[i] for i in range(len(requests))]

    def _pause(self, graph_tenant_id: str, throttled: list[Response], sent: int) -> None:
        named = [s for s in (retry_after_seconds(r.headers) for r in throttled) if s]
        pause = self.pacer.pause(graph_tenant_id, retry_after=max(named) if named else None)
        log.info(
            "Graph throttled tenant %s (%d of %d calls: %s); every call to it waits %.1fs",
            graph_tenant_id,
            len(throttled),
            sent,
            "/".join(sorted({str(r.status) for r in throttled})),
            pause,
        )

    def _request(
        self, method: str, url: str, token: str, body: Any, deadline: float
    ) -> httpx.Response:
        left = deadline - time.monotonic()
        if left < MIN_CALL_SECONDS:
            raise GraphTimeout("no time left for the call")
        headers = {"Authorization": f"Bearer {token}", "client-request-id": str(uuid.uuid4())}
        try:
            return self.http.request(
                method,
                url,
                headers=headers,
                json=body,
                timeout=min(self.settings.timeout_seconds, left),
            )
        except httpx.TimeoutException:
            raise GraphTimeout("Graph did not answer in time") from None
        except httpx.HTTPError as exc:
            raise GraphUnavailable(f"Graph call failed: {type(exc).__name__}") from None

    def _send_one(
        self, version: str, token: str, batch: list[Request], deadline: float
    ) -> list[Response]:
        (request,) = batch
        url = f"{self.settings.graph_url}/{version}{request.url}"
        return [_response(self._request(request.method, url, token, request.body, deadline))]

    def _send_batch(
        self, version: str, token: str, batch: list[Request], deadline: float
    ) -> list[Response]:
        entries = []
        for i, request in enumerate(batch):
            entry: dict[str, Any] = {"id": str(i), "method": request.method, "url": request.url}
            if request.body is not None:
                entry["body"] = request.body
                entry["headers"] = {"Content-Type": "application/json"}
            entries.append(entry)
        url = f"{self.settings.graph_url}/{version}/$batch"
        whole = _response(self._request("POST", url, token, {"requests": entries}, deadline))
        if whole.status in THROTTLED or whole.status == 401:
            return [whole] * len(batch)
        if not whole.ok or not isinstance(whole.body, dict):
            raise GraphUnavailable(f"Graph $batch answered {whole.status}")
        by_id = {str(r.get("id")): r for r in whole.body.get("responses", [])}
        responses = []
        for i in range(len(batch)):
            sub = by_id.get(str(i))
            if sub is None:
                raise GraphUnavailable("Graph $batch left a request unanswered")
            headers = dict(sub.get("headers") or {})
            responses.append(Response(int(sub.get("status", 500)), sub.get("body"), headers))
        return responses


def _response(reply: httpx.Response) -> Response:
    try:
        body = reply.json() if reply.content else None
    except ValueError:
        body = None
    return Response(reply.status_code, body, dict(reply.headers))


# Graph's refusals, as stable codes that are safe to show (never its text).
_REFUSALS = {
    400: "GRAPH_INVALID_OBJECT",
    403: "GRAPH_FORBIDDEN",
    404: "GRAPH_NOT_FOUND",
    409: "GRAPH_CONFLICT",
    412: "GRAPH_CONFLICT",
}


def refusal(response: Response) -> GraphRefused | GraphUnavailable:
    """What a failed response means: transient (5xx) or a refusal with a safe code."""
    if response.status >= 500:
        return GraphUnavailable(f"Graph answered {response.status}")
    body = response.body if isinstance(response.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    # Graph's own code is logged (a word, not text); its message never is.
    log.info("Graph refused a call: %d %s", response.status, error.get("code") or "-")
    return GraphRefused(_REFUSALS.get(response.status, "GRAPH_REJECTED"))
