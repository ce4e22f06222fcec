"""GetRun per SPEC §4: a run is addressed by tenant, type and id; another
tenant's or another type's run does not exist for the caller."""

from __future__ import annotations

import uuid

import grpc
import pytest
from tenantpilot.runs.v1 import runs_pb2

from tests.support.runs import start, wait_terminal


def get_request(tenant: str, run_type: str, run_id: str) -> runs_pb2.GetRunRequest:
    return runs_pb2.GetRunRequest(tenant_external_id=tenant, run_type=run_type, run_id=run_id)


def test_get_run_returns_the_full_record(stub, tenant):
    run = start(stub, tenant.external_id, "snapshot_capture", target="get-full").run
    final = wait_terminal(stub, run)
    got = stub.GetRun(get_request(tenant.external_id, "snapshot_capture", run.id)).run
    assert got == final
    assert got.HasField("started_at") and got.HasField("finished_at")
    assert got.created_at.ToDatetime() <= got.started_at.ToDatetime()
    assert got.started_at.ToDatetime() <= got.finished_at.ToDatetime()
    total = len(tenant.policy_ids)
    assert (got.counts.total, got.counts.succeeded, got.counts.failed) == (total, total, 0)


@pytest.mark.parametrize("wrong", ["tenant", "type", "id"])
def test_other_tenant_type_or_id_is_not_found(wrong, stub, tenant):
    run = start(stub, tenant.external_id, "snapshot_capture", target="nf").run
    address = {"tenant": tenant.external_id, "type": "snapshot_capture", "id": run.id}
    address[wrong] = {
        "tenant": "someone-else",
        "type": "restore_preview",
        "id": str(uuid.uuid4()),
    }[wrong]
    with pytest.raises(grpc.RpcError) as error:
        stub.GetRun(get_request(address["tenant"], address["type"], address["id"]), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    # Existence never leaks: the message is the same for every case.
    assert error.value.details() == "run not found"
