"""SPEC "Errors and limits": every rejected request is INVALID_ARGUMENT,
names the field, and writes nothing."""

from __future__ import annotations

import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tenantpilot.runs.v1 import runs_pb2

from tests.support.db import query_one
from tests.support.runs import start


def violations(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)
    fields = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        fields += [v.field for v in bad_request.field_violations]
    return fields


def all_runs(database_url: str) -> int:
    # Some cases' tenant ids cannot even be stored; count every run instead.
    return query_one(database_url, "SELECT count(*) FROM runs")[0]


CASES = {
    "empty tenant": (dict(tenant=""), "tenant_external_id"),
    "tenant too long": (dict(tenant="t" * 129), "tenant_external_id"),
    "tenant with control character": (dict(tenant="tenant\x00x"), "tenant_external_id"),
    "tenant with newline": (dict(tenant="ten\nant"), "tenant_external_id"),
    "unknown run type": (dict(run_type="drop_everything"), "run_type"),
    "empty run type": (dict(run_type=""), "run_type"),
    "target too long": (dict(target="x" * 257), "options.target_object_id"),
    "target with control character": (dict(target="bs\x1b[31m"), "options.target_object_id"),
    "payload hash too long": (dict(payload_hash="h" * 129), "options.payload_hash"),
    "payload hash with control character": (dict(payload_hash="h\x7f"), "options.payload_hash"),
    "item id too long": (dict(item_ids=["ok", "i" * 257]), "options.item_ids[1]"),
    "empty item id": (dict(item_ids=["ok", ""]), "options.item_ids[1]"),
    "item id with control character": (dict(item_ids=["a\tb"]), "options.item_ids[0]"),
    "too many item ids": (dict(item_ids=[f"p{i}" for i in range(10_001)]), "options.item_ids"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_start_run_rejects_bad_input_and_writes_nothing(case, idle_stub, tenant, database_url):
    overrides, field = CASES[case]
    args = {"tenant": tenant.external_id, "run_type": "snapshot_capture", **overrides}
    tenant_name = args.pop("tenant")
    run_type = args.pop("run_type")
    before = all_runs(database_url)
    with pytest.raises(grpc.RpcError) as error:
        start(idle_stub, tenant_name, run_type, **args)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error.value)
    assert field in error.value.details()
    assert all_runs(database_url) == before


def test_limits_themselves_are_accepted(idle_stub, tenant):
    response = start(
        idle_stub,
        "t" * 128,
        "snapshot_capture",
        target="x" * 256,
        payload_hash="h" * 128,
        item_ids=["i" * 256, *(f"p{i}" for i in range(9_999))],
    )
    assert response.run.counts.total == 10_000
    assert response.run.tenant_external_id == "t" * 128


def test_unicode_is_not_a_control_character(idle_stub):
    response = start(idle_stub, "mandant-müller-日本", "snapshot_capture", target="Größe ✓")
    assert response.run.tenant_external_id == "mandant-müller-日本"


def test_duplicate_item_ids_are_dropped_in_order(idle_stub, tenant):
    response = start(
        idle_stub,
        tenant.external_id,
        "snapshot_capture",
        target="dups",
        item_ids=["b", "a", "b", "c", "a"],
    )
    assert response.run.counts.total == 3


@pytest.mark.parametrize(
    "request_fields, field",
    [
        (dict(run_id="not-a-uuid"), "run_id"),
        (dict(run_id=""), "run_id"),
        (dict(run_type="bogus"), "run_type"),
        (dict(tenant_external_id="a\x01"), "tenant_external_id"),
    ],
)
def test_get_run_rejects_malformed_addresses(request_fields, field, idle_stub, tenant):
    request = runs_pb2.GetRunRequest(
        tenant_external_id=tenant.external_id,
        run_type="snapshot_capture",
        run_id="00000000-0000-0000-0000-000000000000",
    )
    for key, value in request_fields.items():
        setattr(request, key, value)
    with pytest.raises(grpc.RpcError) as error:
        idle_stub.GetRun(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error.value)


def test_a_message_that_does_not_parse_is_invalid_argument_in_one_log_line(stack):
    # Field 1 (tenant_external_id, a string) holding bytes that are not UTF-8.
    garbage = b"\x0a\x02\xff\xfe"
    channel = stack.channel()
    unary = channel.unary_unary(
        "/tenantpilot.runs.v1.RunService/GetRun",
        request_serializer=None,
        response_deserializer=None,
    )
    stream = channel.unary_stream(
        "/tenantpilot.runs.v1.RunService/WatchRun",
        request_serializer=None,
        response_deserializer=None,
    )
    log_before = len(stack.server.output())
    for call in (
        lambda: unary(garbage, timeout=10, metadata=stack.metadata),
        lambda: list(stream(garbage, timeout=10, metadata=stack.metadata)),
        lambda: unary(garbage, timeout=10),  # no token: the message is refused first
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == (
            "the request message does not parse (for example, a string that is not UTF-8)"
        )
    deadline = time.monotonic() + 10
    while (logged := stack.server.output()[log_before:]).count("does not parse") < 3:
        assert time.monotonic() < deadline, logged
        time.sleep(0.05)
    assert "Traceback" not in logged and "DecodeError" not in logged, logged
    assert len([line for line in logged.splitlines() if "does not parse" in line]) == 3
