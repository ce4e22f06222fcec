"""GET /admin/whoami: the calling token's name, role and grants, as the
served description says, never the token; 401 without a valid one."""

from __future__ import annotations

import httpx
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from runsvc_gateway.contract import served_description
from tests.gateway.contract_check import assert_error
from tests.support.auth import new_token


def matches_served_schema(body: dict) -> None:
    doc = served_description()
    schema = doc["paths"]["/whoami"]["get"]["responses"]["200"]["content"]["application/json"]
    registry = Registry().with_resource(
        "urn:served", Resource.from_contents(doc, default_specification=DRAFT4)
    )
    OAS30Validator(
        {"$ref": "urn:served#" + schema["schema"]["$ref"].removeprefix("#")}, registry=registry
    ).validate(body)


def test_whoami_names_the_role_and_the_tenants(idle_gateway):
    database_url = idle_gateway.stack.database_url
    viewer = new_token(database_url, role="viewer", tenants=["t-b", "t-a"])
    with httpx.Client(base_url=idle_gateway.url, timeout=30) as http:
        answer = http.get("/admin/whoami", headers={"Authorization": f"Bearer {viewer}"})
        assert answer.status_code == 200
        body = answer.json()
        matches_served_schema(body)
        assert body["role"] == "viewer"
        assert body["allTenants"] is False
        assert body["tenants"] == ["t-a", "t-b"]
        assert viewer not in answer.text

        with idle_gateway.client() as operator:
            mine = operator.get("/admin/whoami").json()
        matches_served_schema(mine)
        assert mine["role"] == "operator" and mine["allTenants"] is True

        assert_error(http.get("/admin/whoami"), 401, "UNAUTHENTICATED")
        unknown = {"Authorization": "Bearer rsvc_0123456789abcdef_" + "a" * 43}
        assert_error(http.get("/admin/whoami", headers=unknown), 401, "UNAUTHENTICATED")
