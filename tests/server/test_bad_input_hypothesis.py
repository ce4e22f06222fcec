"""Bad input, generated: arbitrary strings and sizes for every field of
StartRun and GetRun (SQL fragments, unicode, control characters, huge
values), sent with tokens of every kind through real gRPC. Every answer is
one a careful caller can act on, never INTERNAL or UNKNOWN, and a refused
request writes nothing."""

from __future__ import annotations

import uuid

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tenantpilot.runs.v1 import runs_pb2

from tests.support.auth import new_token
from tests.support.db import query_one
from tests.support.seeding import seed_tenant

ACCEPTABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
}
RUN_TYPES = ["snapshot_capture", "backup_set_add_policies", "restore_preview", "restore_execute"]
SQL = [
    "'; DROP TABLE runs; --",
    "' OR '1'='1",
    "%(tenant)s",
    "%s%s%s",
    "$1",
    "\\x00",
    "*",
    "NULL",
    "tenant' UNION SELECT secret_hash FROM api_tokens --",
]
# Real calls over a socket: no per-example deadline; the fixtures are shared.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Lone surrogates cannot be encoded in a protobuf string at all (the client
# refuses them), so they are left out; every other code point may appear.
any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)
control_text = st.text(
    alphabet=st.sampled_from(["\x00", "\x01", "\n", "\t", "\x1b", "\x7f", "\u0085", "a", "é"]),
    min_size=1,
    max_size=20,
)
huge_text = st.integers(min_value=120, max_value=200_000).map(lambda n: "x" * n)
text_value = st.one_of(any_text, control_text, huge_text, st.sampled_from(SQL))


def address_value(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Valid two times in three, so that the checks after the first one run too."""
    return st.one_of(valid, valid, text_value)


# The all-tenants operator half of the time: its requests reach validation
# and the database; the other callers exercise the interceptor.
CALLERS = ["operator-all"] * 4 + ["operator-tenant", "viewer-tenant", "none", "garbage"]


item_ids = st.one_of(
    st.lists(text_value, max_size=30),
    st.lists(st.sampled_from(["pol-00000", "pol-00001", "pol-00000"]), max_size=5),
    st.integers(min_value=9_995, max_value=10_005).map(lambda n: [f"p{i}" for i in range(n)]),
)


def count_writes(database_url: str) -> tuple[int, int]:
    return query_one(
        database_url, "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM audit_events)"
    )


@pytest.fixture(scope="module")
def fuzz(idle_stack, database_url):
    """Stubs for each kind of caller, and a tenant some of them are granted."""
    tenant = seed_tenant(database_url).external_id
    callers = {
        "operator-all": idle_stack.stub(),
        "operator-tenant": idle_stack.stub(token=new_token(database_url, tenants=[tenant])),
        "viewer-tenant": idle_stack.stub(
            token=new_token(database_url, role="viewer", tenants=[tenant])
        ),
        "none": idle_stack.stub(token=None),
        "garbage": idle_stack.stub(token="rsvc_' OR 1=1 --"),
    }
    existing = idle_stack.stub().StartRun(
        runs_pb2.StartRunRequest(tenant_external_id=tenant, run_type="snapshot_capture"),
        timeout=10,
    )
    return tenant, callers, existing.run.id


def call(method, request) -> tuple[grpc.StatusCode, object]:
    try:
        return grpc.StatusCode.OK, method(request, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error


@FUZZ
@given(data=st.data())
def test_start_run_answers_safely_and_refusals_write_nothing(data, fuzz, database_url):
    tenant, callers, _ = fuzz
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    request = runs_pb2.StartRunRequest(
        tenant_external_id=data.draw(address_value(st.just(tenant)), label="tenant"),
        run_type=data.draw(address_value(st.sampled_from(RUN_TYPES)), label="run_type"),
    )
    options = request.options
    if data.draw(st.booleans(), label="with target"):
        options.target_object_id = data.draw(text_value, label="target")
    if data.draw(st.booleans(), label="with payload hash"):
        options.payload_hash = data.draw(text_value, label="payload_hash")
    if data.draw(st.booleans(), label="with item ids"):
        options.item_ids.SetInParent()
        options.item_ids.values.extend(data.draw(item_ids, label="item_ids"))

    before = count_writes(database_url)
    code, answer = call(callers[caller].StartRun, request)
    event(f"StartRun -> {code.name}")
    assert code in ACCEPTABLE, (code, answer)
    if code == grpc.StatusCode.OK:
        assert answer.run.tenant_external_id == request.tenant_external_id
        assert caller.startswith("operator")
    else:
        assert count_writes(database_url) == before
        assert "Traceback" not in answer.details() and "psycopg" not in answer.details()


@FUZZ
@given(data=st.data())
def test_get_run_answers_safely(data, fuzz, database_url):
    tenant, callers, existing = fuzz
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    run_id = data.draw(
        st.one_of(
            st.just(existing),
            st.uuids().map(str),
            st.uuids().map(lambda u: u.hex.upper()),
            st.uuids().map(lambda u: "{" + str(u) + "}"),
            text_value,
        ),
        label="run_id",
    )
    request = runs_pb2.GetRunRequest(
        tenant_external_id=data.draw(address_value(st.just(tenant)), label="tenant"),
        run_type=data.draw(address_value(st.just("snapshot_capture")), label="run_type"),
        run_id=run_id,
    )
    before = count_writes(database_url)
    code, answer = call(callers[caller].GetRun, request)
    event(f"GetRun -> {code.name}")
    assert code in ACCEPTABLE, (code, answer)
    if code == grpc.StatusCode.OK:
        assert answer.run.id == existing and answer.run.tenant_external_id == tenant
    assert count_writes(database_url) == before


def test_sql_in_fields_is_data_not_code(idle_stub, database_url):
    """The fragments are stored verbatim; the tables are all still there."""
    name = "'; DROP TABLE runs; --"
    seed_tenant(database_url, external_id=name)
    answer = idle_stub.StartRun(
        runs_pb2.StartRunRequest(
            tenant_external_id=name,
            run_type="snapshot_capture",
            options=runs_pb2.RunStartRequest(target_object_id=f"{uuid.uuid4()}' OR '1'='1"),
        ),
        timeout=10,
    )
    assert answer.run.tenant_external_id == name
    assert (
        query_one(database_url, "SELECT count(*) FROM runs WHERE tenant_external_id = %s", name)[0]
        >= 1
    )
