"""What a caller sends, checked before anything reaches the server: path ids,
the Authorization header, Last-Event-ID and the JSON body (size, encoding,
syntax, then the contract's schema)."""

from __future__ import annotations

import json
import unicodedata
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from tenantpilot.runs.v1 import runs_pb2

from runsvc_gateway import contract
from runsvc_gateway.errors import HttpError, invalid
from runsvc_observe import request_id
from runsvc_observe.logging import current_context

# SPEC "Errors and limits"; the server checks them too, the gateway only
# keeps oversized or unprintable ids from travelling further.
MAX_TENANT_LEN = 128
MAX_RUN_TYPE_LEN = 64
MAX_RUN_ID_LEN = 64
DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024  # 10,000 item ids of 256 characters fit
MAX_VERSION = 2**63 - 1


def _unprintable(value: str) -> bool:
    # Cc: control characters; Cs: lone surrogates (not Unicode text at all).
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def _path_id(field: str, value: str, max_len: int) -> str:
    if len(value) > max_len:
        raise invalid(field, f"must be at most {max_len} characters")
    if _unprintable(value):
        raise invalid(field, "must not contain control characters")
    return value


def address(request: Request, *, with_run_id: bool) -> tuple[str, str, str]:
    raw_path = request.scope.get("raw_path")
    if raw_path is not None:
        try:
            # The server decodes %XX leniently (U+FFFD); ids must be real UTF-8.
            unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeDecodeError:
            raise invalid("", "the path is not UTF-8") from None
    params = request.path_params
    tenant = _path_id("tenantExternalId", params["tenantExternalId"], MAX_TENANT_LEN)
    run_type = _path_id("runType", params["runType"], MAX_RUN_TYPE_LEN)
    run_id = _path_id("runId", params["runId"], MAX_RUN_ID_LEN) if with_run_id else ""
    return tenant, run_type, run_id


def check_start_run_type(run_type: str) -> None:
    problem = contract.start_run_type().problem(run_type)
    if problem is not None:
        known = ", ".join(contract.run_types())
        raise invalid("runType", f"unknown run type; one of {known}")


def metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """The caller's Authorization header, passed on as gRPC metadata, and the
    request id (runsvc_gateway.observe) that ties the server's lines to it."""
    rid = current_context().get("request_id")
    passed = ((request_id.HEADER, rid),) if rid else ()
    value = request.headers.get("authorization")
    if value is None:
        return passed
    if not value.isascii() or not value.isprintable():
        raise HttpError(401, "UNAUTHENTICATED", "malformed Authorization header")
    return (("authorization", value), *passed)


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
