"""Bad input, generated, for every field of the operators' RPCs (ListRuns,
ListRunItems, CancelRun, RetryRun) with callers of every kind, through real
gRPC: only the status codes a careful caller can act on, never INTERNAL or
UNKNOWN, and a refused request writes nothing."""

from __future__ import annotations

import grpc
from hypothesis import event, given
from hypothesis import strategies as st
from tenantpilot.runs.v1 import runs_pb2

from tests.server.test_bad_input_hypothesis import (
    ACCEPTABLE,
    CALLERS,
    FUZZ,
    RUN_TYPES,
    address_value,
    call,
    count_writes,
    fuzz,  # noqa: F401 - the shared fixture
    text_value,
)

ANSWERS = ACCEPTABLE | {grpc.StatusCode.FAILED_PRECONDITION}
int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
enum_value = st.one_of(st.integers(min_value=0, max_value=6), int32)
timestamp = st.builds(
    lambda seconds, nanos: runs_pb2.google_dot_protobuf_dot_timestamp__pb2.Timestamp(
        seconds=seconds, nanos=nanos
    ),
    st.one_of(
        st.integers(min_value=0, max_value=2_000_000_000),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
    ),
    st.one_of(st.integers(min_value=0, max_value=999_999_999), int32),
)
page_token = st.one_of(
    st.just(""), text_value, st.text(alphabet="ABCDEFabcdef0123456789-_=", max_size=80)
)


def run_id_value(existing: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(existing), st.just(existing), st.uuids().map(str), text_value)


def refused_writes_nothing(code, answer, before, database_url) -> None:
    event(f"-> {code.name}")
    assert code in ANSWERS, (code, answer)
    if code != grpc.StatusCode.OK:
        assert count_writes(database_url) == before
        assert "Traceback" not in answer.details() and "psycopg" not in answer.details()


@FUZZ
@given(data=st.data())
def test_list_runs_answers_safely(data, fuzz, database_url):  # noqa: F811
    tenant, callers, _ = fuzz
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    request = runs_pb2.ListRunsRequest(
        tenant_external_id=data.draw(address_value(st.just(tenant)), label="tenant"),
        run_types=data.draw(
            st.lists(address_value(st.sampled_from(RUN_TYPES)), max_size=6), label="run_types"
        ),
        statuses=data.draw(st.lists(enum_value, max_size=6), label="statuses"),
        page_size=data.draw(int32, label="page_size"),
        page_token=data.draw(page_token, label="page_token"),
    )
    if data.draw(st.booleans(), label="with target"):
        request.target_object_id = data.draw(text_value, label="target")
    for field in ("created_after", "created_before"):
        if data.draw(st.booleans(), label=f"with {field}"):
            getattr(request, field).CopyFrom(data.draw(timestamp, label=field))
    before = count_writes(database_url)
    code, answer = call(callers[caller].ListRuns, request)
    refused_writes_nothing(code, answer, before, database_url)
    assert count_writes(database_url) == before
    if code == grpc.StatusCode.OK:
        assert {r.tenant_external_id for r in answer.runs} <= {request.tenant_external_id}
        assert len(answer.runs) <= min(request.page_size or 50, 1000)


@FUZZ
@given(data=st.data())
def test_list_run_items_answers_safely(data, fuzz, database_url):  # noqa: F811
    tenant, callers, existing = fuzz
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    request = runs_pb2.ListRunItemsRequest(
        tenant_external_id=data.draw(address_value(st.just(tenant)), label="tenant"),
        run_type=data.draw(address_value(st.just("snapshot_capture")), label="run_type"),
        run_id=data.draw(run_id_value(existing), label="run_id"),
        outcomes=data.draw(st.lists(enum_value, max_size=5), label="outcomes"),
        page_size=data.draw(int32, label="page_size"),
        page_token=data.draw(page_token, label="page_token"),
    )
    before = count_writes(database_url)
    code, answer = call(callers[caller].ListRunItems, request)
    refused_writes_nothing(code, answer, before, database_url)
    assert count_writes(database_url) == before


@FUZZ
@given(data=st.data())
def test_cancel_and_retry_answer_safely(data, fuzz, database_url):  # noqa: F811
    tenant, callers, existing = fuzz
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    method = data.draw(st.sampled_from(["CancelRun", "RetryRun"]), label="method")
    message = runs_pb2.CancelRunRequest if method == "CancelRun" else runs_pb2.RetryRunRequest
    request = message(
        tenant_external_id=data.draw(address_value(st.just(tenant)), label="tenant"),
        run_type=data.draw(address_value(st.just("snapshot_capture")), label="run_type"),
        run_id=data.draw(run_id_value(existing), label="run_id"),
    )
    before = count_writes(database_url)
    code, answer = call(getattr(callers[caller], method), request)
    refused_writes_nothing(code, answer, before, database_url)
    if code == grpc.StatusCode.OK:
        assert caller.startswith("operator")
