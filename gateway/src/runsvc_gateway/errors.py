"""HTTP errors, chosen once: gRPC status -> HTTP status (SPEC "Errors and
limits") and the JSON error body `{"error": {"code", "message"}}`."""

from __future__ import annotations

import re

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from starlette.responses import JSONResponse

MAX_MESSAGE = 500

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# What the server says is meant for callers; for these codes the gateway
# says something of its own instead (the channel's own text names addresses).
OWN_MESSAGE: dict[int, str] = {
    500: "internal error",
    503: "the run service is unavailable; retry",
    504: "the run service did not answer in time; retry",
}

# Proto field paths in the server's BadRequest details -> the names of the
# contract and its extensions (path and query parameters, body properties).
FIELD_NAMES = {
    "tenant_external_id": "tenantExternalId",
    "run_type": "runType",
    "run_id": "runId",
    "after_version": "Last-Event-ID",
    "options.target_object_id": "targetObjectId",
    "options.payload_hash": "payloadHash",
    "options.item_ids": "itemIds",
    # ListRuns and ListRunItems
    "run_types": "runType",
    "statuses": "status",
    "target_object_id": "targetObjectId",
    "created_after": "createdAfter",
    "created_before": "createdBefore",
    "outcomes": "outcome",
    "page_size": "pageSize",
    "page_token": "pageToken",
}
_INDEXED = re.compile(r"^(.*?)((?:\[\d+\])*)$")


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(field: str, description: str) -> HttpError:
    where = f"{field}: " if field else ""
    return HttpError(400, "INVALID_ARGUMENT", f"{where}{description}")


def error_response(error: HttpError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": error.code, "message": _clip(error.message)}},
        status_code=error.status,
        headers=headers,
    )


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def contract_field(proto_path: str) -> str:
    """`options.item_ids[3]` -> `itemIds[3]`; unknown paths stay as they are."""
    match = _INDEXED.match(proto_path)
    assert match is not None  # the pattern matches any text
    base, index = match[1], match[2]
    return FIELD_NAMES[base] + index if base in FIELD_NAMES else proto_path


def from_rpc_error(error: grpc.aio.AioRpcError) -> HttpError:
    code = error.code()
    status = HTTP_STATUS.get(code, 500)
    name = code.name if status != 500 else "INTERNAL"
    if status in OWN_MESSAGE:
        return HttpError(status, name, OWN_MESSAGE[status])
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        violations = _field_violations(error)
        if violations:
            return HttpError(status, name, "; ".join(violations))
    return HttpError(status, name, error.details() or name.lower().replace("_", " "))


def _field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)
    if status is None:
        return []
    found = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.extend(
                f"{contract_field(v.field)}: {v.description}" for v in bad_request.field_violations
            )
    return found
