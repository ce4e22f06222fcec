"""Response bodies checked against the contract file itself (the copy the
gateway ships, which a test proves identical to shared/contract/)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import httpx
import yaml
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

URI = "urn:test:contract"


@cache
def contract_text() -> str:
    files = resources.files("runsvc_gateway")
    return files.joinpath("admin-runs.openapi.yaml").read_text(encoding="utf-8")


@cache
def contract() -> dict[str, Any]:
    return yaml.safe_load(contract_text())


@cache
def served_error_schema() -> dict[str, Any]:
    from runsvc_gateway.contract import ERROR_SCHEMA

    return ERROR_SCHEMA


def _validator(schema: dict[str, Any]) -> OAS30Validator:
    registry: Registry = Registry().with_resource(
        URI, Resource.from_contents(contract(), default_specification=DRAFT4)
    )
    return OAS30Validator(schema, registry=registry, format_checker=oas30_format_checker)


def _rewrite_refs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            k: (URI + v if k == "$ref" and v.startswith("#") else _rewrite_refs(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rewrite_refs(v) for v in schema]
    return schema


def assert_contract_response(response: httpx.Response, path: str, method: str) -> Any:
    """The status is one the contract documents for the operation and the
    JSON body matches the contract's schema for it."""
    operation = contract()["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: {response.status_code} not in the contract"
    body = response.json()
    content = documented.get("content")
    if content:
        assert response.headers["content-type"].startswith("application/json")
        schema = _rewrite_refs(content["application/json"]["schema"])
        error = best_match(_validator(schema).iter_errors(body))
        assert error is None, f"{method} {path} {response.status_code}: {error}\n{body}"
    return body


@cache
def extension_fields() -> set[str]:
    """The properties the gateway adds to every RunRecord (its served
    description's RunExtensions; the contract allows more properties)."""
    from runsvc_gateway.contract import operators

    return set(operators()["components"]["schemas"]["RunExtensions"]["properties"])


def assert_record(record: Any) -> None:
    """One RunRecord (from GET, POST or an SSE event), per the contract."""
    schema = {"$ref": URI + "#/components/schemas/RunRecord"}
    error = best_match(_validator(schema).iter_errors(record))
    assert error is None, f"{error}\n{record}"
    # Exactly the contract's fields and the extensions, each present
    # (nullable ones as null).
    contract_fields = set(contract()["components"]["schemas"]["RunRecord"]["properties"])
    assert set(record) == contract_fields | extension_fields()
    assert set(record["counts"]) == {"total", "succeeded", "failed"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    error = best_match(_validator(served_error_schema()).iter_errors(body))
    assert error is None, f"{error}\n{body}"
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


@cache
def served() -> dict[str, Any]:
    from runsvc_gateway.contract import served_description

    return served_description()


def assert_served_response(response: httpx.Response, path: str, method: str) -> Any:
    """As assert_contract_response, against the served description (the
    contract and its extensions)."""
    operation = served()["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: {response.status_code} not documented"
    body = response.json()
    schema = {"$ref": SERVED_URI + documented["content"]["application/json"]["schema"]["$ref"]}
    registry: Registry = Registry().with_resource(
        SERVED_URI, Resource.from_contents(served(), default_specification=DRAFT4)
    )
    validator = OAS30Validator(schema, registry=registry, format_checker=oas30_format_checker)
    error = best_match(validator.iter_errors(body))
    assert error is None, f"{method} {path} {response.status_code}: {error}\n{body}"
    return body


SERVED_URI = "urn:test:served"
