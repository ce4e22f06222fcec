"""The contract file (a verbatim copy of shared/contract/admin-runs.openapi.yaml)
and everything derived from it: the request validators and the served
description. No schema is written down twice: validation reads the file."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

CONTRACT_FILE = "admin-runs.openapi.yaml"
CONTRACT_URI = "urn:runsvc:admin-runs.openapi.yaml"
START_PATH = "/t/{tenantExternalId}/runs/{runType}"
GET_PATH = "/t/{tenantExternalId}/runs/{runType}/{runId}"
WATCH_PATH = "/t/{tenantExternalId}/runs/{runType}/{runId}/watch"
# The operators' extensions, described in operators.openapi.yaml.
OPERATORS_FILE = "operators.openapi.yaml"
LIST_PATH = "/t/{tenantExternalId}/runs"
ITEMS_PATH = "/t/{tenantExternalId}/runs/{runType}/{runId}/items"
CANCEL_PATH = "/t/{tenantExternalId}/runs/{runType}/{runId}/cancel"
RETRY_PATH = "/t/{tenantExternalId}/runs/{runType}/{runId}/retry"
WHOAMI_PATH = "/whoami"


def contract_text() -> str:
    return resources.files(__package__).joinpath(CONTRACT_FILE).read_text(encoding="utf-8")


@cache
def contract() -> dict[str, Any]:
    """The parsed contract; callers must not change it (they copy)."""
    return yaml.safe_load(contract_text())


@cache
def operators() -> dict[str, Any]:
    """The description of the operators' routes and their schemas."""
    text = resources.files(__package__).joinpath(OPERATORS_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Problem:
    """Why a value breaks the contract: where (a field path) and what."""

    where: str
    message: str


class SchemaCheck:
    """One schema of the contract, checked with an OpenAPI 3.0 validator."""

    def __init__(self, pointer: str) -> None:
        registry: Registry = Registry().with_resource(
            CONTRACT_URI, Resource.from_contents(contract(), default_specification=DRAFT4)
        )
        self._validator = OAS30Validator({"$ref": f"{CONTRACT_URI}#{pointer}"}, registry=registry)

    def problem(self, value: Any) -> Problem | None:
        error = best_match(self._validator.iter_errors(value))
        if error is None:
            return None
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        return Problem(where.lstrip("."), error.message)


def _parameter_pointer(path: str, method: str, name: str) -> str:
    for index, parameter in enumerate(contract()["paths"][path][method]["parameters"]):
        if parameter["name"] == name:
            return f"/paths/{_escape(path)}/{method}/parameters/{index}/schema"
    raise KeyError(f"{method} {path} has no parameter {name}")


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


@cache
def start_request_body() -> SchemaCheck:
    return SchemaCheck("/components/schemas/RunStartRequest")


@cache
def start_run_type() -> SchemaCheck:
    return SchemaCheck(_parameter_pointer(START_PATH, "post", "runType"))


@cache
def run_types() -> tuple[str, ...]:
    schema = contract()["paths"][START_PATH]["post"]["parameters"]
    return tuple(next(p for p in schema if p["name"] == "runType")["schema"]["enum"])


# -- the served description: the contract plus the watch route and errors --

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable machine-readable code, for example "
                    "INVALID_ARGUMENT, NOT_FOUND or UNAVAILABLE.",
                },
                "message": {"type": "string", "description": "For people; no internals."},
            },
        }
    },
}

ERROR_RESPONSES: dict[str, str] = {
    "400": "Invalid request: unknown properties, wrong types, an unknown run type, "
    "malformed JSON, ids with control characters or over their length limits",
    "401": "No or unknown bearer token",
    "403": "The token has no grant for the tenant or the operation",
    "404": "Not found",
    "409": "The run is not in a state that allows this",
    "413": "Request body over the size limit",
    "415": "Request body that is not application/json",
    "429": "Too many requests",
    "431": "Request header fields too large (an Authorization header over 4 KiB)",
    "500": "Internal error",
    "503": "The run service is unavailable; retry",
    "504": "The run service did not answer in time; retry",
}


# Only routes that read a body can answer 413 (every POST) or 415 (startRun,
# the only one that takes a JSON body).
def _answers(code: str, path: str, method: str) -> bool:
    if code == "413":
        return method == "post"
    if code == "415":
        return path == START_PATH and method == "post"
    return True


# One event of the watch stream (contentSchema: what its data holds as JSON).
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The run's version."},
        "event": {
            "type": "string",
            "enum": ["message", "error"],
            "description": "`message`: a state of the run. `error`: the stream was cut "
            "short by an error (reconnect with Last-Event-ID).",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/RunRecord"},
                    {"$ref": "#/components/schemas/Error"},
                ]
            },
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _path_parameter(name: str) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}


def _watch_operation() -> dict[str, Any]:
    return {
        "operationId": "watchRun",
        "summary": "Watch a run's progress (Server-Sent Events; an extension of the contract)",
        "description": (
            "Streams `text/event-stream`: one event per state of the run, its data a "
            "RunRecord as JSON and its id the run's version. The first event is the "
            "current state; the stream closes right after the terminal state. Send "
            "`Last-Event-ID` (the last id seen) to resume without repeats. Comment "
            "lines keep idle connections open. While Microsoft Graph throttles the run's "
            "tenant, a record (here and from GET) also carries `tenantThrottledUntil`, "
            "an RFC 3339 time: an extension of the contract, absent otherwise."
        ),
        "parameters": [
            _path_parameter("tenantExternalId"),
            _path_parameter("runType"),
            _path_parameter("runId"),
            {
                "in": "header",
                "name": "Last-Event-ID",
                "required": False,
                "schema": {"type": "string"},
                "description": "The last event id (run version) seen; a whole number.",
            },
        ],
        "responses": {
            "200": {
                "description": "Event stream; each event's data is a RunRecord",
                "content": {"text/event-stream": {"schema": SSE_EVENT}},
            }
        },
    }


CALLER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "role", "allTenants", "tenants"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "description": "The token's name."},
        "role": {"type": "string", "enum": ["viewer", "operator"]},
        "allTenants": {"type": "boolean", "description": "Granted every tenant."},
        "tenants": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The tenants granted (sorted); empty when allTenants.",
        },
    },
}


def _whoami_operation() -> dict[str, Any]:
    return {
        "operationId": "whoami",
        "summary": "Describe the calling token: name, role, tenant grants (an extension)",
        "description": "What the console shows and offers: a viewer gets no buttons that "
        "change runs. Never the token or its hash.",
        "responses": {
            "200": {
                "description": "The caller",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Caller"}}
                },
            }
        },
    }


@cache
def served_description() -> dict[str, Any]:
    """The contract unchanged in its paths and schemas, plus the watch route,
    the operators' routes and the error responses each operation can give."""
    doc = copy.deepcopy(contract())
    doc["components"]["schemas"]["Error"] = ERROR_SCHEMA
    doc["paths"][WATCH_PATH] = {"get": _watch_operation()}
    extensions = copy.deepcopy(operators())
    doc["paths"].update(extensions["paths"])
    doc["components"]["schemas"].update(extensions["components"]["schemas"])
    doc["components"]["schemas"]["Caller"] = CALLER_SCHEMA
    doc["paths"][WHOAMI_PATH] = {"get": _whoami_operation()}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for code, description in ERROR_RESPONSES.items():
                if not _answers(code, path, method):
                    continue
                # Responses the contract already has stay exactly as written.
                responses.setdefault(code, _error_response(description))
    return doc


@cache
def served_yaml() -> str:
    return yaml.safe_dump(served_description(), sort_keys=False, allow_unicode=True)
