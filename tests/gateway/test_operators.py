"""The operators' routes of the gateway (list, items, cancel, retry) against
the real server, worker and Postgres: bodies per the served description,
pages, filters, errors, and who may call them."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.gateway.contract_check import assert_error, assert_record, assert_served_response
from tests.support.auth import new_token
from tests.support.db import count_runs
from tests.support.seeding import seed_tenant

LIST = "/t/{tenantExternalId}/runs"
ITEMS = "/t/{tenantExternalId}/runs/{runType}/{runId}/items"
CANCEL = "/t/{tenantExternalId}/runs/{runType}/{runId}/cancel"
RETRY = "/t/{tenantExternalId}/runs/{runType}/{runId}/retry"


def start(client: httpx.Client, tenant: str, run_type: str = "snapshot_capture", **body) -> dict:
    response = client.post(f"/admin/t/{tenant}/runs/{run_type}", json=body or None)
    assert response.status_code in (200, 201), response.text
    return response.json()["run"]


def run_url(run: dict) -> str:
    return f"/admin/t/{run['tenantExternalId']}/runs/{run['type']}/{run['id']}"


def wait_terminal(client: httpx.Client, run: dict, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (current := client.get(run_url(run)).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, current
        time.sleep(0.05)
    return current


def test_list_pages_newest_first_with_filters(idle_http, tenant):
    tid = tenant.external_id
    started = [start(idle_http, tid, payloadHash=f"h{n}")["id"] for n in range(7)]
    preview = start(idle_http, tid, "restore_preview", targetObjectId="bs-1")["id"]
    seen, token = [], ""
    while True:
        params = {"pageSize": 3} | ({"pageToken": token} if token else {})
        body = assert_served_response(
            idle_http.get(f"/admin/t/{tid}/runs", params=params), LIST, "get"
        )
        assert len(body["runs"]) <= 3
        for record in body["runs"]:
            assert_record(record)
        seen += [r["id"] for r in body["runs"]]
        token = body["nextPageToken"]
        if not token:
            break
    assert seen == [preview, *reversed(started)]
    only = idle_http.get(
        f"/admin/t/{tid}/runs",
        params=[("runType", "restore_preview"), ("status", "queued"), ("status", "failed")],
    )
    assert [r["id"] for r in assert_served_response(only, LIST, "get")["runs"]] == [preview]
    by_target = idle_http.get(f"/admin/t/{tid}/runs", params={"targetObjectId": "bs-1"})
    assert [r["id"] for r in by_target.json()["runs"]] == [preview]
    created = idle_http.get(
        run_url({"tenantExternalId": tid, "type": "restore_preview", "id": preview})
    ).json()["createdAt"]
    newer = idle_http.get(f"/admin/t/{tid}/runs", params={"createdAfter": created})
    assert [r["id"] for r in newer.json()["runs"]] == [preview]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"status": "done"}, "status"),
        ({"status": ""}, "status"),
        ({"runType": "nope"}, "runType[0]"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"pageSize": "-1"}, "pageSize"),
        ({"pageSize": str(2**31)}, "pageSize"),
        ({"createdAfter": "yesterday"}, "createdAfter"),
        ({"createdBefore": "2024-01-01T00:00:00"}, "createdBefore"),
        ({"pageToken": "forged"}, "pageToken"),
        ({"targetObjectId": "a\x00b"}, "targetObjectId"),
        ({"targetObjectId": "t" * 257}, "targetObjectId"),
        ({"sort": "asc"}, "sort"),
    ],
)
def test_bad_list_parameters_are_400_naming_them(idle_http, tenant, params, field):
    response = idle_http.get(f"/admin/t/{tenant.external_id}/runs", params=params)
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["message"].startswith(f"{field}: "), error


def test_items_of_a_partial_run(http, tenant):
    body = {"targetObjectId": tenant.backup_set_id, "itemIds": [tenant.policy_ids[0], "nope"]}
    run = wait_terminal(http, start(http, tenant.external_id, "backup_set_add_policies", **body))
    assert run["status"] == "partial"
    response = http.get(f"{run_url(run)}/items", params={"pageSize": 1})
    page = assert_served_response(response, ITEMS, "get")
    assert [i["itemId"] for i in page["items"]] == [tenant.policy_ids[0]]
    assert page["items"][0]["outcome"] == "succeeded" and page["items"][0]["errorCode"] is None
    assert set(page["items"][0]["detail"]) == {"backupItemId", "snapshotId"}
    rest = http.get(f"{run_url(run)}/items", params={"pageToken": page["nextPageToken"]})
    second = assert_served_response(rest, ITEMS, "get")
    assert [
        (i["itemId"], i["position"], i["outcome"], i["errorCode"]) for i in second["items"]
    ] == [("nope", 1, "failed", "POLICY_NOT_FOUND")]
    assert second["nextPageToken"] == ""
    failed = http.get(f"{run_url(run)}/items", params={"outcome": "failed"}).json()["items"]
    assert [i["itemId"] for i in failed] == ["nope"]
    bad = http.get(f"{run_url(run)}/items", params={"outcome": "lost"})
    assert assert_error(bad, 400, "INVALID_ARGUMENT")["message"].startswith("outcome: ")


def test_cancel_then_retry(idle_http, http, tenant):
    queued = start(idle_http, tenant.external_id, itemIds=["a", "b"])
    response = idle_http.post(f"{run_url(queued)}/cancel")
    cancelled = assert_served_response(response, CANCEL, "post")
    assert response.status_code == 200
    assert cancelled["status"] == "failed" and cancelled["safeError"]["code"] == "CANCELLED"
    assert cancelled["counts"] == {"total": 2, "succeeded": 0, "failed": 2}
    assert cancelled["cancelRequestedAt"] is not None
    assert idle_http.post(f"{run_url(queued)}/cancel").json() == cancelled  # twice is fine

    retried = idle_http.post(f"{run_url(queued)}/retry")
    assert retried.status_code == 201
    body = assert_served_response(retried, RETRY, "post")
    assert body["reused"] is False and body["run"]["retryOfRunId"] == queued["id"]
    assert body["run"]["counts"]["total"] == 2
    reused = idle_http.post(f"{run_url(queued)}/retry")
    assert reused.status_code == 200 and reused.json()["run"]["id"] == body["run"]["id"]

    done = wait_terminal(http, start(http, tenant.external_id, payloadHash="done"))
    assert done["status"] == "succeeded"
    assert_error(http.post(f"{run_url(done)}/cancel"), 409, "FAILED_PRECONDITION")
    assert_error(http.post(f"{run_url(done)}/retry"), 409, "FAILED_PRECONDITION")
    assert_error(
        http.post(f"{run_url(done)}/cancel", json={"force": True}), 400, "INVALID_ARGUMENT"
    )


def test_operators_routes_are_tenant_scoped_and_cancel_retry_need_an_operator(
    idle_gateway, idle_http
):
    database_url = idle_gateway.stack.database_url
    a, b = seed_tenant(database_url), seed_tenant(database_url)
    run_b = start(idle_http, b.external_id)
    before = count_runs(database_url, b.external_id)
    for role in ("viewer", "operator"):
        token = new_token(database_url, role=role, tenants=[a.external_id])
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=idle_gateway.url, headers=headers, timeout=30) as client:
            assert_error(client.get(f"/admin/t/{b.external_id}/runs"), 403, "PERMISSION_DENIED")
            for suffix in ("/items", "/cancel", "/retry"):
                method = client.get if suffix == "/items" else client.post
                assert_error(method(f"{run_url(run_b)}{suffix}"), 403, "PERMISSION_DENIED")
                under_a = f"/admin/t/{a.external_id}/runs/{run_b['type']}/{run_b['id']}{suffix}"
                expected = 404 if role == "operator" or suffix == "/items" else 403
                assert assert_error(method(under_a), expected)["code"] in (
                    "NOT_FOUND",
                    "PERMISSION_DENIED",
                )
            mine = client.get(f"/admin/t/{a.external_id}/runs").json()["runs"]
            assert run_b["id"] not in {r["id"] for r in mine}
    assert count_runs(database_url, b.external_id) == before
    assert idle_http.get(run_url(run_b)).json()["status"] == "queued"


def test_a_60_kb_authorization_header_is_431(idle_gateway):
    huge = {"Authorization": "Bearer " + "x" * 60_000}
    with httpx.Client(base_url=idle_gateway.url, headers=huge, timeout=30) as client:
        for response in (
            client.get("/admin/t/x/runs"),
            client.post("/admin/t/x/runs/snapshot_capture"),
        ):
            error = assert_error(response, 431, "REQUEST_HEADER_FIELDS_TOO_LARGE")
            assert "grpc" not in error["message"].lower(), error
