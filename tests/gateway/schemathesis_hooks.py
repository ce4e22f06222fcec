"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by test_schemathesis).

The contract's schemas are looser than SPEC "Errors and limits": they allow
any string where the service takes ids of bounded length without control
characters, and any run type on GET. The served description keeps the
contract unchanged, so these hooks narrow the generated values to what the
SPEC accepts, and `positive_data_acceptance` then holds the gateway to
accepting every such request. Values of a wrong type are left alone, so
negative cases stay negative. The coverage phase does not run map hooks,
so `filter_failure` drops exactly one kind of report: "schema-valid request
rejected" answered by 400, for a request the SPEC refuses. The refused ids
are covered by test_bad_input.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from datetime import datetime
from urllib.parse import quote, unquote

import schemathesis

RUN_TYPES = ("backup_set_add_policies", "restore_execute", "restore_preview", "snapshot_capture")
# SPEC: these run types are refused at start without a target (and the first
# without item ids).
NEEDS_TARGET = ("backup_set_add_policies", "restore_execute", "restore_preview")
LIMITS = {"tenantExternalId": 128, "targetObjectId": 256, "payloadHash": 128}
MAX_ITEM_ID = 256
MAX_ITEM_IDS = 10_000


def _clean(value: str, limit: int, *, required: bool) -> str:
    kept = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cs"))[:limit]
    return kept if kept or not required else "x"


def _decoded(params) -> dict:
    """Schemathesis hands path parameters over percent-encoded."""
    return {k: unquote(v) if isinstance(v, str) else v for k, v in (params or {}).items()}


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    params = _decoded(path_parameters)
    tenant = params.get("tenantExternalId")
    if isinstance(tenant, str):
        params["tenantExternalId"] = _clean(tenant, LIMITS["tenantExternalId"], required=True)
    run_type = params.get("runType")
    if isinstance(run_type, str) and run_type not in RUN_TYPES:
        # POST's runType is an enum in the contract; GET's is any string there.
        digest = hashlib.sha256(run_type.encode("utf-8", "replace")).digest()
        params["runType"] = RUN_TYPES[digest[0] % len(RUN_TYPES)]
    run_id = params.get("runId")
    if isinstance(run_id, str):
        try:
            uuid.UUID(run_id)
        except ValueError:
            params["runId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, run_id))
    return {k: quote(v, safe="") if isinstance(v, str) else v for k, v in params.items()}


@schemathesis.hook
def map_body(context, body):
    if not isinstance(body, dict):
        return body
    body = dict(body)
    for name in ("targetObjectId", "payloadHash"):
        if isinstance(body.get(name), str):
            body[name] = _clean(body[name], LIMITS[name], required=False)
    items = body.get("itemIds")
    if isinstance(items, list) and all(isinstance(i, str) for i in items):
        body["itemIds"] = [_clean(i, MAX_ITEM_ID, required=True) for i in items[:MAX_ITEM_IDS]]
    return body


@schemathesis.hook
def map_query(context, query):
    """ListRuns' and ListRunItems' query: a page token is only ever one the
    service gave (tests/gateway/test_operators.py pages with real ones)."""
    if not isinstance(query, dict):
        return query
    query = dict(query)
    query.pop("pageToken", None)
    if isinstance(query.get("targetObjectId"), str):
        query["targetObjectId"] = _clean(
            query["targetObjectId"], LIMITS["targetObjectId"], required=False
        )
    for name in ("createdAfter", "createdBefore"):
        if isinstance(query.get(name), str) and not _readable_time(query[name]):
            del query[name]
    return query


def _readable_time(value: str) -> bool:
    """RFC 3339 allows year 0 and leap seconds, which no timestamp holds."""
    try:
        datetime.fromisoformat(value.upper())
    except ValueError:
        return False
    return True


@schemathesis.hook
def map_headers(context, headers):
    if not headers or not isinstance(headers.get("Last-Event-ID"), str):
        return headers
    # The watch's Last-Event-ID is a run version; other text is refused (400).
    headers = dict(headers)
    value = headers["Last-Event-ID"].strip()
    headers["Last-Event-ID"] = value if value.isascii() and value.isdigit() else ""
    return headers


def _bad_text(value, limit: int, *, required: bool) -> bool:
    return isinstance(value, str) and _clean(value, limit, required=required) != value


def spec_refuses(case) -> bool:
    """True when the request breaks a SPEC limit the contract does not state."""
    params = _decoded(case.path_parameters)
    if _bad_text(params.get("tenantExternalId"), LIMITS["tenantExternalId"], required=True):
        return True
    if isinstance(params.get("runType"), str) and params["runType"] not in RUN_TYPES:
        return True
    run_id = params.get("runId")
    if isinstance(run_id, str):
        try:
            uuid.UUID(run_id)
        except ValueError:
            return True
    query = case.query or {}
    if isinstance(query, dict):
        if query.get("pageToken"):
            return True
        if _bad_text(query.get("targetObjectId"), LIMITS["targetObjectId"], required=False):
            return True
        for name in ("createdAfter", "createdBefore"):
            if isinstance(query.get(name), str) and not _readable_time(query[name]):
                return True
    headers = case.headers or {}
    last = headers.get("Last-Event-ID")
    if isinstance(last, str) and last.strip() and not (last.isascii() and last.strip().isdigit()):
        return True
    body = case.body
    starting = case.method.upper() == "POST" and case.path == "/t/{tenantExternalId}/runs/{runType}"
    if starting and params.get("runType") in NEEDS_TARGET:
        given = body if isinstance(body, dict) else {}
        if not given.get("targetObjectId"):
            return True
        if params["runType"] == "backup_set_add_policies" and given.get("itemIds") is None:
            return True
    if isinstance(body, dict):
        for name in ("targetObjectId", "payloadHash"):
            if _bad_text(body.get(name), LIMITS[name], required=False):
                return True
        items = body.get("itemIds")
        if isinstance(items, list):
            if len(items) > MAX_ITEM_IDS:
                return True
            if any(_bad_text(i, MAX_ITEM_ID, required=True) for i in items):
                return True
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure except a 400 for a request the SPEC refuses."""
    if failure.code != "ST202" or response.status_code != 400:
        return True
    if spec_refuses(case):
        return False
    # Stateful runs resume a real run's watch from a made-up Last-Event-ID;
    # a version newer than the run's is refused by design (no skipped states).
    try:
        message = json.loads(response.content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return True
    return not message.startswith("Last-Event-ID: is newer than the run's current version")
