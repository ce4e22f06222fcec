"""Who may do what, over HTTP through the gateway against the real server's
token checks: 401 without a valid token, 403 for a role or tenant not
granted, 404 for a run of another tenant, and nothing written when refused."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.contract_check import assert_contract_response, assert_error
from tests.support.auth import new_token
from tests.support.db import count_runs
from tests.support.seeding import seed_tenant

START = "/t/{tenantExternalId}/runs/{runType}"
GET = "/t/{tenantExternalId}/runs/{runType}/{runId}"


def run_path(tenant: str, run_id: str) -> str:
    return f"/admin/t/{tenant}/runs/snapshot_capture/{run_id}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def three_calls(client: httpx.Client, tenant: str, run_id: str) -> list[httpx.Response]:
    """POST, GET and the SSE watch of one tenant's run, as a legacy caller."""
    return [
        client.post(f"/admin/t/{tenant}/runs/snapshot_capture"),
        client.get(run_path(tenant, run_id)),
        client.get(f"{run_path(tenant, run_id)}/watch"),
    ]


@pytest.fixture
def created(idle_http, tenant) -> dict:
    response = idle_http.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
    return assert_contract_response(response, START, "post")["run"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer rsvc_0123456789abcdef_not-a-real-secret"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "unknown", "basic", "empty"],
)
def test_no_valid_token_is_401_and_writes_nothing(idle_gateway, tenant, created, headers):
    before = count_runs(idle_gateway.stack.database_url, tenant.external_id)
    with httpx.Client(base_url=idle_gateway.url, headers=headers, timeout=30) as anonymous:
        for response in three_calls(anonymous, tenant.external_id, created["id"]):
            assert_error(response, 401, "UNAUTHENTICATED")
    assert count_runs(idle_gateway.stack.database_url, tenant.external_id) == before


def test_viewer_reads_and_watches_but_may_not_start(idle_gateway, idle_http, tenant, created):
    viewer = new_token(idle_gateway.stack.database_url, role="viewer")
    with httpx.Client(base_url=idle_gateway.url, headers=bearer(viewer), timeout=30) as client:
        refused = client.post(f"/admin/t/{tenant.external_id}/runs/restore_execute")
        assert_error(refused, 403, "PERMISSION_DENIED")
        record = assert_contract_response(
            client.get(run_path(tenant.external_id, created["id"])), GET, "get"
        )
        assert record["id"] == created["id"]
        with client.stream("GET", f"{run_path(tenant.external_id, created['id'])}/watch") as sse:
            assert sse.status_code == 200
            first = next(line for line in sse.iter_lines() if line.startswith("data:"))
            assert created["id"] in first


def test_a_token_for_tenant_a_gets_403_everywhere_in_tenant_b(idle_gateway, idle_http):
    database_url = idle_gateway.stack.database_url
    tenant_a, tenant_b = seed_tenant(database_url), seed_tenant(database_url)
    run_b = assert_contract_response(
        idle_http.post(f"/admin/t/{tenant_b.external_id}/runs/snapshot_capture"), START, "post"
    )["run"]
    before_b = count_runs(database_url, tenant_b.external_id)
    for role in ("operator", "viewer"):
        token_a = new_token(database_url, role=role, tenants=[tenant_a.external_id])
        with httpx.Client(base_url=idle_gateway.url, headers=bearer(token_a), timeout=30) as a:
            for response in three_calls(a, tenant_b.external_id, run_b["id"]):
                assert_error(response, 403, "PERMISSION_DENIED")
            # Its own tenant is open to it.
            own = a.get(run_path(tenant_a.external_id, run_b["id"]))
            assert_error(own, 404, "NOT_FOUND")
    assert count_runs(database_url, tenant_b.external_id) == before_b


def test_a_run_of_a_under_b_with_a_token_for_b_is_404(idle_gateway, idle_http):
    database_url = idle_gateway.stack.database_url
    tenant_a, tenant_b = seed_tenant(database_url), seed_tenant(database_url)
    run_a = assert_contract_response(
        idle_http.post(f"/admin/t/{tenant_a.external_id}/runs/snapshot_capture"), START, "post"
    )["run"]
    token_b = new_token(database_url, role="operator", tenants=[tenant_b.external_id])
    with httpx.Client(base_url=idle_gateway.url, headers=bearer(token_b), timeout=30) as b:
        assert_error(b.get(run_path(tenant_b.external_id, run_a["id"])), 404, "NOT_FOUND")
        watch = b.get(f"{run_path(tenant_b.external_id, run_a['id'])}/watch")
        assert_error(watch, 404, "NOT_FOUND")
        # ...and under A's own path it is 403: B's token has no grant there.
        assert_error(b.get(run_path(tenant_a.external_id, run_a["id"])), 403, "PERMISSION_DENIED")


def test_start_for_an_unknown_tenant_is_404_and_writes_nothing(idle_http, database_url):
    response = idle_http.post("/admin/t/no-such-tenant-http/runs/snapshot_capture")
    assert_error(response, 404, "NOT_FOUND")
    assert count_runs(database_url, "no-such-tenant-http") == 0
