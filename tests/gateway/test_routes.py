"""The contract's routes over real HTTP: status codes, JSON exactly per the
contract's schemas, 404 that leaks no existence, and the served description."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.gateway.contract_check import (
    assert_contract_response,
    assert_error,
    assert_record,
    contract,
    contract_text,
)

START = "/t/{tenantExternalId}/runs/{runType}"
GET = "/t/{tenantExternalId}/runs/{runType}/{runId}"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
CONTRACT_SHA256 = "f6efc6844d136aa5d9641a2e0d1642cc3654360b0b88a02ad3b05dba50b1e947"
SHARED_CONTRACT = (
    Path(__file__).resolve().parents[2].parent / "shared/contract/admin-runs.openapi.yaml"
)


def start(client: httpx.Client, tenant: str, run_type: str, **kwargs) -> httpx.Response:
    return client.post(f"/admin/t/{tenant}/runs/{run_type}", **kwargs)


def get(client: httpx.Client, record: dict) -> httpx.Response:
    return client.get(f"/admin/t/{record['tenantExternalId']}/runs/{record['type']}/{record['id']}")


def wait_terminal(client: httpx.Client, record: dict, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        current = assert_contract_response(get(client, record), GET, "get")
        if current["status"] in ("succeeded", "partial", "failed"):
            return current
        assert time.monotonic() < deadline, f"run still {current['status']}"
        time.sleep(0.05)


def test_new_run_is_201_then_reused_is_200_with_the_same_run(idle_http, tenant):
    first = start(idle_http, tenant.external_id, "snapshot_capture")
    assert first.status_code == 201
    created = assert_contract_response(first, START, "post")
    assert created["reused"] is False
    record = created["run"]
    assert_record(record)
    assert record["tenantExternalId"] == tenant.external_id
    assert record["type"] == "snapshot_capture"
    assert record["status"] == "queued"
    assert RFC3339_UTC.match(record["createdAt"]), record["createdAt"]
    assert record["startedAt"] is None and record["finishedAt"] is None
    assert record["safeError"] is None
    assert record["counts"] == {"total": 0, "succeeded": 0, "failed": 0}

    again = start(idle_http, tenant.external_id, "snapshot_capture", json={})
    assert again.status_code == 200
    reused = assert_contract_response(again, START, "post")
    assert reused["reused"] is True and reused["run"]["id"] == record["id"]


@pytest.mark.parametrize(
    "body",
    [
        {},  # absent
        {"content": b""},
        {"content": b"  \n"},
        {"json": {}},
        {"json": {"targetObjectId": None, "payloadHash": None, "itemIds": None}},
    ],
    ids=["absent", "empty", "whitespace", "empty-object", "all-null"],
)
def test_body_is_optional_and_each_form_means_no_options(idle_http, tenant, body):
    response = start(idle_http, tenant.external_id, "snapshot_capture", **body)
    assert response.status_code == 201, response.text
    assert_contract_response(response, START, "post")
    # Every form is the same dedupe key (no target, no hash): one run.
    again = start(idle_http, tenant.external_id, "snapshot_capture")
    assert again.status_code == 200 and again.json()["run"]["id"] == response.json()["run"]["id"]


def test_options_reach_the_server(idle_http, tenant):
    body = {"targetObjectId": "bs-main", "payloadHash": "h1", "itemIds": ["a", "b", "a"]}
    response = start(idle_http, tenant.external_id, "restore_preview", json=body)
    assert response.status_code == 201
    # The dedupe key is (target, hash): another hash is another run, the same one is reused.
    other = start(
        idle_http, tenant.external_id, "restore_preview", json={**body, "payloadHash": "h2"}
    )
    assert other.status_code == 201
    assert other.json()["run"]["id"] != response.json()["run"]["id"]
    same = start(idle_http, tenant.external_id, "restore_preview", json=body)
    assert same.status_code == 200 and same.json()["reused"] is True


def test_get_follows_a_real_run_to_its_terminal_state(http, tenant):
    created = assert_contract_response(
        start(http, tenant.external_id, "snapshot_capture"), START, "post"
    )["run"]
    final = wait_terminal(http, created)
    assert_record(final)
    assert final["id"] == created["id"]
    assert final["status"] == "succeeded"
    assert final["counts"] == {"total": 5, "succeeded": 5, "failed": 0}
    assert RFC3339_UTC.match(final["startedAt"]) and RFC3339_UTC.match(final["finishedAt"])
    assert final["safeError"] is None


def test_failed_run_carries_safe_error(http, tenant):
    # An unknown backup set: the run fails with a stable code.
    body = {"targetObjectId": "bs-nowhere", "itemIds": [tenant.policy_ids[0]]}
    created = start(http, tenant.external_id, "backup_set_add_policies", json=body).json()["run"]
    final = wait_terminal(http, created)
    assert_record(final)
    assert final["status"] == "failed"
    assert final["safeError"]["code"] == "TARGET_NOT_FOUND"
    assert isinstance(final["safeError"]["context"], dict)


def test_partial_run_counts_and_context_are_json_numbers(http, tenant):
    body = {"targetObjectId": tenant.backup_set_id, "itemIds": [tenant.policy_ids[0], "nope"]}
    created = start(http, tenant.external_id, "backup_set_add_policies", json=body).json()["run"]
    final = wait_terminal(http, created)
    assert_record(final)
    assert final["status"] == "partial"
    assert final["counts"] == {"total": 2, "succeeded": 1, "failed": 1}
    assert final["safeError"]["code"] == "ITEMS_FAILED"
    context = final["safeError"]["context"]
    counts = [v for v in context.values() if isinstance(v, int | float)]
    assert all(isinstance(v, int) for v in counts), context  # 1, not 1.0


def test_not_found_leaks_nothing(idle_http, tenant):
    record = start(idle_http, tenant.external_id, "snapshot_capture").json()["run"]
    assert get(idle_http, record).status_code == 200
    for other in (
        {**record, "tenantExternalId": tenant.external_id + "-other"},
        {**record, "type": "restore_preview"},
        {**record, "id": str(uuid.uuid4())},
    ):
        response = get(idle_http, other)
        assert_contract_response(response, GET, "get")
        assert_error(response, 404, "NOT_FOUND")


def test_unknown_route_and_method_get_json_errors(idle_http):
    assert_error(idle_http.get("/admin/nothing-here"), 404, "NOT_FOUND")
    assert_error(idle_http.delete("/admin/t/x/runs/snapshot_capture"), 405, "METHOD_NOT_ALLOWED")


def test_served_description_is_the_contract_plus_watch_and_errors(idle_http):
    response = idle_http.get("/admin/openapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    served = yaml.safe_load(response.text)
    original = contract()
    assert served["servers"] == original["servers"]
    # Every schema of the contract, unchanged; plus Error.
    for name, schema in original["components"]["schemas"].items():
        assert served["components"]["schemas"][name] == schema
    assert "Error" in served["components"]["schemas"]
    # Every path and operation of the contract, unchanged but for added error responses.
    for path, item in original["paths"].items():
        for method, operation in item.items():
            mine = served["paths"][path][method]
            assert {k: v for k, v in mine.items() if k != "responses"} == {
                k: v for k, v in operation.items() if k != "responses"
            }
            for code, documented in operation["responses"].items():
                assert mine["responses"][code] == documented
            for code in ("400", "401", "404", "503"):
                assert code in mine["responses"]
    watch = served["paths"]["/t/{tenantExternalId}/runs/{runType}/{runId}/watch"]["get"]
    assert "text/event-stream" in watch["responses"]["200"]["content"]


def test_gateway_ships_the_contract_file_unchanged():
    # The digest of the contract as handed over; where shared/ stands beside
    # the repository (not in every clone), the copy equals it byte for byte.
    shipped = contract_text().encode("utf-8")
    assert hashlib.sha256(shipped).hexdigest() == CONTRACT_SHA256
    if SHARED_CONTRACT.exists():
        assert shipped == SHARED_CONTRACT.read_bytes()


def test_probes(idle_http):
    health = idle_http.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = idle_http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True}


def test_authorization_passes_through_and_is_never_logged(idle_gateway, tenant):
    unknown = f"rsvc_{uuid.uuid4().hex[:16]}_{uuid.uuid4().hex}"
    with idle_gateway.client() as client:  # sends the stack's token
        response = start(client, tenant.external_id, "snapshot_capture")
        assert response.status_code == 201, response.text  # the test's own tenant
        refused = start(
            client,
            tenant.external_id,
            "snapshot_capture",
            headers={"Authorization": f"Bearer {unknown}"},
        )
        assert_error(refused, 401, "UNAUTHENTICATED")
        # A header gRPC metadata cannot carry is refused, not passed on broken.
        bad = start(
            client, tenant.external_id, "snapshot_capture", headers={"Authorization": "Bearer \x7f"}
        )
        assert_error(bad, 401, "UNAUTHENTICATED")
    output = idle_gateway.process.output()
    assert idle_gateway.stack.token not in output
    assert unknown not in output


def test_keep_alive_responses_are_not_held_back(idle_http):
    # Headers and body are two writes; without TCP_NODELAY each response on a
    # kept-alive connection waits for the client's delayed ACK (~40 ms).
    idle_http.get("/healthz")
    timings = []
    for _ in range(21):
        began = time.perf_counter()
        assert idle_http.get("/healthz").status_code == 200
        timings.append(time.perf_counter() - began)
    assert sorted(timings)[10] < 0.025, timings
