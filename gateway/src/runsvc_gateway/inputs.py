"""What a caller sends, checked before anything reaches the server: path ids,
the Authorization header, Last-Event-ID and the JSON body (size, encoding,
syntax, then the contract's schema)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request
from tenantpilot.runs.v1 import runs_pb2

from runsvc_gateway import contract
from runsvc_gateway.errors import HttpError, invalid

# The field limits (lengths, control characters, item-id count) are the
# server's, written once as protovalidate rules in the proto; the gateway
# passes ids on and maps the server's field violations to the contract's
# names (errors.contract_field). It checks only what cannot travel as a
# proto string at all (bytes that are not UTF-8, lone surrogates) and the
# contract's own schemas.
DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024  # 10,000 item ids of 256 characters fit
MAX_VERSION = 2**63 - 1
# gRPC refuses metadata over 8 KiB with internals in its message; a bearer
# token is about 60 characters, so anything this long is refused here (431).
MAX_AUTHORIZATION_BYTES = 4096


def address(request: Request, *, with_run_id: bool) -> tuple[str, str, str]:
    raw_path = request.scope.get("raw_path")
    if raw_path is not None:
        try:
            # The server decodes %XX leniently (U+FFFD); ids must be real UTF-8.
            unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeDecodeError:
            raise invalid("", "the path is not UTF-8") from None
    params = request.path_params
    return (
        params["tenantExternalId"],
        params.get("runType", ""),
        params["runId"] if with_run_id else "",
    )


def check_start_run_type(run_type: str) -> None:
    problem = contract.start_run_type().problem(run_type)
    if problem is not None:
        known = ", ".join(contract.run_types())
        raise invalid("runType", f"unknown run type; one of {known}")


def metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """The caller's Authorization header, passed on as gRPC metadata."""
    value = request.headers.get("authorization")
    if value is None:
        return ()
    if len(value) > MAX_AUTHORIZATION_BYTES:
        raise HttpError(
            431,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
            f"the Authorization header is over {MAX_AUTHORIZATION_BYTES} bytes",
        )
    if not value.isascii() or not value.isprintable():
        raise HttpError(401, "UNAUTHENTICATED", "malformed Authorization header")
    return (("authorization", value),)


def last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id")
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_VERSION:
        raise invalid("Last-Event-ID", "must be a run version (a whole number)")
    return int(raw)


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> HttpError:
    return HttpError(413, "PAYLOAD_TOO_LARGE", f"request body over {max_bytes} bytes")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def start_options(request: Request, body: bytes) -> runs_pb2.RunStartRequest:
    """The body as the contract's RunStartRequest: absent, empty or `{}` all
    mean no options."""
    options = runs_pb2.RunStartRequest()
    if body.strip() == b"":
        return options
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "the request body must be application/json")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("", "the request body is not UTF-8") from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise invalid("", "the request body is not valid JSON") from None
    problem = contract.start_request_body().problem(value)
    if problem is not None:
        if not isinstance(value, dict):
            raise invalid("", "the request body must be a JSON object (RunStartRequest)")
        raise invalid(problem.where, problem.message)
    _check_text(value)
    if value.get("targetObjectId") is not None:
        options.target_object_id = value["targetObjectId"]
    if value.get("payloadHash") is not None:
        options.payload_hash = value["payloadHash"]
    if value.get("itemIds") is not None:
        options.item_ids.SetInParent()
        options.item_ids.values.extend(value["itemIds"])
    return options


def _check_text(value: dict[str, Any]) -> None:
    """JSON escapes can spell lone surrogates, which are no text at all."""
    for name in ("targetObjectId", "payloadHash"):
        if isinstance(value.get(name), str) and _has_surrogate(value[name]):
            raise invalid(name, "must be valid Unicode text")
    for index, item in enumerate(value.get("itemIds") or ()):
        if _has_surrogate(item):
            raise invalid(f"itemIds[{index}]", "must be valid Unicode text")


def _has_surrogate(value: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in value)


# -- the operators' routes: query parameters --------------------------------

MAX_INT32 = 2**31 - 1
RUN_STATUSES = {
    "queued": runs_pb2.RUN_STATUS_QUEUED,
    "running": runs_pb2.RUN_STATUS_RUNNING,
    "succeeded": runs_pb2.RUN_STATUS_SUCCEEDED,
    "failed": runs_pb2.RUN_STATUS_FAILED,
    "partial": runs_pb2.RUN_STATUS_PARTIAL,
}
ITEM_OUTCOMES = {
    "pending": runs_pb2.ITEM_OUTCOME_PENDING,
    "succeeded": runs_pb2.ITEM_OUTCOME_SUCCEEDED,
    "failed": runs_pb2.ITEM_OUTCOME_FAILED,
}


class Query:
    """The query string of one request: only the named parameters; a
    repeatable one as a list. An empty text value counts as absent."""

    def __init__(self, request: Request, allowed: set[str]) -> None:
        raw = request.scope.get("query_string", b"")
        try:
            unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise invalid("", "the query string is not UTF-8") from None
        self._params = request.query_params
        unknown = sorted(set(self._params) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed))
            raise invalid(unknown[0], f"unknown query parameter; known: {known}")

    def values(self, name: str) -> list[str]:
        return self._params.getlist(name)

    def one(self, name: str) -> str | None:
        values = self.values(name)
        if len(values) > 1:
            raise invalid(name, "must be given once")
        return values[0] if values else None

    def text(self, name: str) -> str | None:
        return self.one(name) or None

    def choices(self, name: str, mapping: dict[str, int]) -> list[int]:
        chosen = []
        for value in self.values(name):
            if value not in mapping:
                raise invalid(name, f"unknown value; one of {', '.join(mapping)}")
            chosen.append(mapping[value])
        return chosen

    def whole_number(self, name: str) -> int:
        value = self.one(name)
        if value is None:
            return 0
        if not (value.isascii() and value.isdigit()) or int(value) > MAX_INT32:
            raise invalid(name, f"must be a whole number from 0 to {MAX_INT32}")
        return int(value)

    def time(self, name: str, into: Timestamp) -> bool:
        value = self.one(name)
        if value is None:
            return False
        try:
            when = datetime.fromisoformat(value.upper())
        except ValueError:
            raise invalid(name, "must be an RFC 3339 date-time") from None
        if when.tzinfo is None:
            raise invalid(name, "must be an RFC 3339 date-time with a time zone")
        into.FromDatetime(when.astimezone(UTC))
        return True


def list_runs_request(request: Request, tenant: str) -> runs_pb2.ListRunsRequest:
    query = Query(
        request,
        {
            "runType",
            "status",
            "targetObjectId",
            "createdAfter",
            "createdBefore",
            "pageSize",
            "pageToken",
        },
    )
    message = runs_pb2.ListRunsRequest(
        tenant_external_id=tenant,
        run_types=query.values("runType"),
        statuses=query.choices("status", RUN_STATUSES),
        page_size=query.whole_number("pageSize"),
        page_token=query.text("pageToken") or "",
    )
    target = query.text("targetObjectId")
    if target is not None:
        message.target_object_id = target
    if not query.time("createdAfter", message.created_after):
        message.ClearField("created_after")
    if not query.time("createdBefore", message.created_before):
        message.ClearField("created_before")
    return message


def list_items_request(
    request: Request, tenant: str, run_type: str, run_id: str
) -> runs_pb2.ListRunItemsRequest:
    query = Query(request, {"outcome", "pageSize", "pageToken"})
    return runs_pb2.ListRunItemsRequest(
        tenant_external_id=tenant,
        run_type=run_type,
        run_id=run_id,
        outcomes=query.choices("outcome", ITEM_OUTCOMES),
        page_size=query.whole_number("pageSize"),
        page_token=query.text("pageToken") or "",
    )


async def no_body(request: Request, max_bytes: int) -> None:
    """Cancel and retry take no body; an empty one or `{}` is fine."""
    body = (await read_body(request, max_bytes)).strip()
    if body not in (b"", b"{}"):
        raise invalid("", "this route takes no request body")
