"""Bad input over HTTP: each case gets a clean 4xx with the JSON error body,
never a 500, and never a started run."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from tests.gateway.contract_check import assert_error

RUN_TYPE = "snapshot_capture"


def runs_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.fixture
def nothing_started(idle_stack):
    """Fails the test if any run was written while it ran."""
    before = runs_count(idle_stack.database_url)
    yield
    assert runs_count(idle_stack.database_url) == before, "a bad request started a run"


@pytest.fixture
def tenant_id() -> str:
    return f"bad-{uuid.uuid4().hex[:12]}"


BODIES = {
    # name: (content, headers, expected status, text the message must contain)
    "malformed-json": (b'{"itemIds": [', {}, 400, "not valid JSON"),
    "trailing-garbage": (b"{} {}", {}, 400, "not valid JSON"),
    "array": (b"[]", {}, 400, "must be a JSON object"),
    "string": (b'"snapshot"', {}, 400, "must be a JSON object"),
    "number": (b"42", {}, 400, "must be a JSON object"),
    "null": (b"null", {}, 400, "must be a JSON object"),
    "unknown-property": (b'{"itemIds": [], "force": true}', {}, 400, "'force' was unexpected"),
    "snake-case-property": (b'{"target_object_id": "x"}', {}, 400, "was unexpected"),
    "wrong-type-target": (b'{"targetObjectId": 5}', {}, 400, "targetObjectId"),
    "wrong-type-items": (b'{"itemIds": "pol-1"}', {}, 400, "itemIds"),
    "wrong-type-item": (b'{"itemIds": ["a", 1]}', {}, 400, "itemIds[1]"),
    "non-utf8": (b'{"targetObjectId": "\xff\xfe"}', {}, 400, "not UTF-8"),
    "raw-control-character": (b'{"targetObjectId": "a\x01b"}', {}, 400, "not valid JSON"),
    "escaped-control-character": (
        b'{"targetObjectId": "a\\u0000b"}',
        {},
        400,
        "targetObjectId: must not contain control characters",
    ),
    "lone-surrogate": (b'{"payloadHash": "\\ud800"}', {}, 400, "payloadHash"),
    "deep-nesting": (b"[" * 100_000 + b"]" * 100_000, {}, 400, "not valid JSON"),
    "over-long-target": (
        json.dumps({"targetObjectId": "t" * 257}).encode(),
        {},
        400,
        "targetObjectId: must be at most 256 characters",
    ),
    "over-long-payload-hash": (
        json.dumps({"payloadHash": "h" * 129}).encode(),
        {},
        400,
        "payloadHash: must be at most 128 characters",
    ),
    "over-long-item-id": (
        json.dumps({"itemIds": ["ok", "i" * 257]}).encode(),
        {},
        400,
        "itemIds[1]: must be at most 256 characters",
    ),
    "empty-item-id": (json.dumps({"itemIds": [""]}).encode(), {}, 400, "itemIds[0]"),
    "too-many-item-ids": (
        json.dumps({"itemIds": [f"i{n}" for n in range(10_001)]}).encode(),
        {},
        400,
        "itemIds: must contain no more than 10000 item(s)",
    ),
    "not-json-media-type": (b"targetObjectId=x", {"Content-Type": "text/plain"}, 415, "json"),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_bad_body(idle_http, nothing_started, tenant_id, name):
    content, headers, status, message = BODIES[name]
    headers = {"Content-Type": "application/json", **headers}
    response = idle_http.post(
        f"/admin/t/{tenant_id}/runs/{RUN_TYPE}", content=content, headers=headers
    )
    error = assert_error(response, status)
    assert message in error["message"], error
    if status == 400:
        assert error["code"] == "INVALID_ARGUMENT"


def test_body_over_the_limit_is_413_declared_or_streamed(idle_http, nothing_started, tenant_id):
    limit = 3 * 1024 * 1024
    too_big = b'{"itemIds": ["' + b"x" * limit + b'"]}'
    url = f"/admin/t/{tenant_id}/runs/{RUN_TYPE}"
    declared = idle_http.post(url, content=too_big, headers={"Content-Type": "application/json"})
    assert_error(declared, 413, "PAYLOAD_TOO_LARGE")

    def chunks():  # no Content-Length: chunked transfer encoding
        for start in range(0, len(too_big), 65536):
            yield too_big[start : start + 65536]

    streamed = idle_http.post(url, content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")


def test_a_body_at_the_server_limits_fits_under_the_size_limit(idle_http, tenant_id):
    # 10,000 item ids of 256 characters: the most the server accepts.
    body = {"itemIds": [f"{n:05d}".ljust(256, "x") for n in range(10_000)]}
    response = idle_http.post(f"/admin/t/{tenant_id}/runs/{RUN_TYPE}", json=body)
    assert response.status_code == 201, response.text[:500]


def test_unknown_run_type(idle_http, nothing_started, tenant_id):
    for run_type in ("nope", "SNAPSHOT_CAPTURE", "snapshot_capture "):
        response = idle_http.post(f"/admin/t/{tenant_id}/runs/{run_type}", json={})
        error = assert_error(response, 400, "INVALID_ARGUMENT")
        assert error["message"].startswith("runType: unknown run type"), error


@pytest.mark.parametrize("raw", ["%00", "%0A", "%1F", "%7F", "%C2%85"], ids=lambda r: r)
def test_control_characters_in_path_ids(idle_http, nothing_started, tenant_id, raw):
    post = idle_http.post(f"/admin/t/{tenant_id}{raw}x/runs/{RUN_TYPE}")
    error = assert_error(post, 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("tenantExternalId: must not contain control characters")
    get = idle_http.get(f"/admin/t/{tenant_id}/runs/{RUN_TYPE}/{uuid.uuid4()}{raw}")
    assert_error(get, 400, "INVALID_ARGUMENT")
    assert "runId" in get.json()["error"]["message"]
    watch = idle_http.get(f"/admin/t/{tenant_id}/runs/{RUN_TYPE}{raw}/{uuid.uuid4()}/watch")
    assert "runType" in assert_error(watch, 400, "INVALID_ARGUMENT")["message"]


def test_over_long_path_ids(idle_http, idle_stack):
    before = runs_count(idle_stack.database_url)
    long_tenant = "t" * 129
    post = idle_http.post(f"/admin/t/{long_tenant}/runs/{RUN_TYPE}")
    assert "tenantExternalId: must be at most 128" in assert_error(post, 400)["message"]
    get = idle_http.get(f"/admin/t/{long_tenant}/runs/{RUN_TYPE}/{uuid.uuid4()}")
    assert "tenantExternalId" in assert_error(get, 400)["message"]
    get = idle_http.get(f"/admin/t/x/runs/{RUN_TYPE}/{'a' * 65}")
    assert "runId: must be a valid UUID" in assert_error(get, 400)["message"]
    get = idle_http.get(f"/admin/t/x/runs/{'r' * 65}/{uuid.uuid4()}")
    assert "runType: must be one of" in assert_error(get, 400)["message"]
    assert runs_count(idle_stack.database_url) == before
    # Just inside the limit, the tenant is accepted (the run is started).
    ok = idle_http.post(
        f"/admin/t/{'t' * 128}/runs/{RUN_TYPE}", json={"payloadHash": uuid.uuid4().hex}
    )
    assert ok.status_code == 201, ok.text  # a fresh payloadHash: always a new run


def test_non_utf8_path(idle_http, nothing_started):
    post = idle_http.post(f"/admin/t/bad%FF%FE/runs/{RUN_TYPE}")
    assert assert_error(post, 400, "INVALID_ARGUMENT")["message"] == "the path is not UTF-8"
    get = idle_http.get(f"/admin/t/x/runs/{RUN_TYPE}/{uuid.uuid4()}%C3")
    assert assert_error(get, 400, "INVALID_ARGUMENT")["message"] == "the path is not UTF-8"


def test_malformed_run_id_on_get(idle_http, nothing_started):
    response = idle_http.get(f"/admin/t/x/runs/{RUN_TYPE}/not-a-uuid")
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("runId:"), error
