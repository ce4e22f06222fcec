"""The run types of SPEC "Run types and what they do to the data", end to
end: gRPC StartRun, a real worker, effects checked in Postgres."""

from __future__ import annotations

import json

import grpc
import pytest
from tenantpilot.runs.v1 import runs_pb2

from tests.support.db import count_runs, query_all, query_one
from tests.support.runs import start, wait_terminal
from tests.support.seeding import seed_tenant

SUCCEEDED, PARTIAL, FAILED = (
    runs_pb2.RUN_STATUS_SUCCEEDED,
    runs_pb2.RUN_STATUS_PARTIAL,
    runs_pb2.RUN_STATUS_FAILED,
)
SCRIPTED = "tests.support.scripted_source:create"


def run_to_end(stub, tenant, run_type, **options) -> runs_pb2.RunRecord:
    response = start(stub, tenant, run_type, **options)
    assert not response.reused
    return wait_terminal(stub, response.run)


def counts(run: runs_pb2.RunRecord) -> tuple[int, int, int]:
    return run.counts.total, run.counts.succeeded, run.counts.failed


def snapshots(database_url: str, tenant: str) -> list[tuple[str, str]]:
    return query_all(
        database_url,
        "SELECT s.policy_id, s.payload_hash FROM policy_snapshots s "
        "JOIN tenants t ON t.id = s.tenant_id WHERE t.external_id = %s ORDER BY 1, 2",
        tenant,
    )


def set_live_payload(database_url: str, tenant: str, policy_id: str, payload: dict) -> None:
    query_one(
        database_url,
        "UPDATE live_policies SET payload = %s FROM tenants t "
        "WHERE t.id = live_policies.tenant_id AND t.external_id = %s "
        "AND live_policies.policy_id = %s RETURNING 1",
        json.dumps(payload),
        tenant,
        policy_id,
    )


def live_payload(database_url: str, tenant: str, policy_id: str) -> dict | None:
    row = query_one(
        database_url,
        "SELECT lp.payload FROM live_policies lp JOIN tenants t ON t.id = lp.tenant_id "
        "WHERE t.external_id = %s AND lp.policy_id = %s",
        tenant,
        policy_id,
    )
    return row[0] if row else None


def backup_items(database_url: str, tenant: str, backup_set: str) -> dict[str, str]:
    """policy id -> backup item id"""
    return dict(
        query_all(
            database_url,
            "SELECT bi.policy_id, bi.id::text FROM backup_items bi "
            "JOIN tenants t ON t.id = bi.tenant_id "
            "WHERE t.external_id = %s AND bi.backup_set_id = %s",
            tenant,
            backup_set,
        )
    )


# --- snapshot_capture -----------------------------------------------------


def test_snapshot_capture_defaults_to_every_policy_and_stores_no_duplicates(
    stub, tenant, database_url
):
    first = run_to_end(stub, tenant.external_id, "snapshot_capture")
    n = len(tenant.policy_ids)
    assert first.status == SUCCEEDED and counts(first) == (n, n, 0)
    assert not first.HasField("safe_error")
    stored = snapshots(database_url, tenant.external_id)
    assert [policy for policy, _ in stored] == tenant.policy_ids

    # Unchanged payloads: succeeded again, nothing new stored.
    second = run_to_end(stub, tenant.external_id, "snapshot_capture")
    assert second.status == SUCCEEDED and counts(second) == (n, n, 0)
    assert snapshots(database_url, tenant.external_id) == stored

    # One payload changes: exactly one new snapshot, the old one kept.
    set_live_payload(database_url, tenant.external_id, "pol-00001", {"changed": True})
    third = run_to_end(stub, tenant.external_id, "snapshot_capture", item_ids=["pol-00001"])
    assert counts(third) == (1, 1, 0)
    after = snapshots(database_url, tenant.external_id)
    assert len(after) == n + 1
    assert [p for p, _ in after].count("pol-00001") == 2


def test_snapshot_capture_of_unknown_policies_is_partial_with_safe_error(stub, tenant):
    run = run_to_end(
        stub,
        tenant.external_id,
        "snapshot_capture",
        item_ids=["pol-00000", "missing-1", "missing-2"],
    )
    assert run.status == PARTIAL and counts(run) == (3, 1, 2)
    assert run.safe_error.code == "ITEMS_FAILED"
    context = dict(run.safe_error.context)
    assert list(context["failedItemIds"]) == ["missing-1", "missing-2"]
    assert context["failedCount"] == 2
    assert dict(context["errorCodes"]) == {"POLICY_NOT_FOUND": 2}


def test_every_item_failing_is_failed(stub, tenant):
    run = run_to_end(stub, tenant.external_id, "snapshot_capture", item_ids=["nope"])
    assert run.status == FAILED and counts(run) == (1, 0, 1)
    assert run.safe_error.code == "ITEMS_FAILED"


def test_safe_error_lists_at_most_twenty_failed_ids(stub, tenant):
    missing = [f"missing-{i:02d}" for i in range(25)]
    run = run_to_end(stub, tenant.external_id, "snapshot_capture", item_ids=missing)
    context = dict(run.safe_error.context)
    assert list(context["failedItemIds"]) == missing[:20]
    assert context["failedCount"] == 25


def test_explicit_empty_item_list_is_a_run_of_nothing(stub, tenant):
    run = run_to_end(stub, tenant.external_id, "snapshot_capture", target="none", item_ids=[])
    assert run.status == SUCCEEDED and counts(run) == (0, 0, 0)


def test_unknown_tenant_fails_the_run_with_a_clear_code(stub):
    run = run_to_end(stub, "no-such-tenant", "snapshot_capture")
    assert run.status == FAILED
    assert run.safe_error.code == "TENANT_NOT_FOUND"
    assert counts(run) == (0, 0, 0)


# --- backup_set_add_policies -----------------------------------------------


def test_backup_set_add_policies_keeps_one_entry_pointing_at_newest_snapshot(
    stub, tenant, database_url
):
    ids = tenant.policy_ids[:3]
    run = run_to_end(
        stub,
        tenant.external_id,
        "backup_set_add_policies",
        target=tenant.backup_set_id,
        item_ids=ids,
    )
    assert run.status == SUCCEEDED and counts(run) == (3, 3, 0)
    first_items = backup_items(database_url, tenant.external_id, tenant.backup_set_id)
    assert sorted(first_items) == ids

    set_live_payload(database_url, tenant.external_id, ids[0], {"new": "payload"})
    again = run_to_end(
        stub,
        tenant.external_id,
        "backup_set_add_policies",
        target=tenant.backup_set_id,
        item_ids=ids[:1],
    )
    assert again.status == SUCCEEDED
    assert backup_items(database_url, tenant.external_id, tenant.backup_set_id) == first_items
    snapshot_payload = query_one(
        database_url,
        "SELECT s.payload FROM backup_items bi JOIN policy_snapshots s ON s.id = bi.snapshot_id "
        "WHERE bi.id = %s",
        first_items[ids[0]],
    )[0]
    assert snapshot_payload == {"new": "payload"}


def test_backup_set_add_policies_to_an_unknown_set_fails_the_run(stub, tenant):
    run = run_to_end(
        stub, tenant.external_id, "backup_set_add_policies", target="bs-unknown", item_ids=["p"]
    )
    assert run.status == FAILED
    assert run.safe_error.code == "TARGET_NOT_FOUND"
    total, succeeded, failed = counts(run)
    assert succeeded == 0 and failed == total


@pytest.mark.parametrize(
    "run_type, options, field",
    [
        ("backup_set_add_policies", dict(item_ids=["pol-00000"]), "options.target_object_id"),
        ("backup_set_add_policies", dict(target="", item_ids=["p"]), "options.target_object_id"),
        ("backup_set_add_policies", dict(target="bs-main"), "options.item_ids"),
        ("restore_preview", dict(), "options.target_object_id"),
        ("restore_execute", dict(target=""), "options.target_object_id"),
    ],
)
def test_a_run_without_its_required_target_or_items_is_refused_at_start(
    run_type, options, field, stub, tenant, database_url
):
    with pytest.raises(grpc.RpcError) as refused:
        start(stub, tenant.external_id, run_type, **options)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(f"{field}: is required for this run type")
    assert count_runs(database_url, tenant.external_id) == 0


# --- restore_preview and restore_execute ------------------------------------


def back_up_everything(stub, tenant) -> None:
    run = run_to_end(
        stub,
        tenant.external_id,
        "backup_set_add_policies",
        target=tenant.backup_set_id,
        item_ids=tenant.policy_ids,
    )
    assert run.status == SUCCEEDED


def drift(database_url: str, tenant) -> None:
    """pol-00000 changed, pol-00001 deleted, the rest untouched."""
    set_live_payload(
        database_url,
        tenant.external_id,
        "pol-00000",
        {"setting": "drifted", "enabled": True, "level": 0, "extra": 1},
    )
    query_one(
        database_url,
        "DELETE FROM live_policies lp USING tenants t WHERE t.id = lp.tenant_id "
        "AND t.external_id = %s AND lp.policy_id = 'pol-00001' RETURNING 1",
        tenant.external_id,
    )


def test_restore_preview_records_actions_and_writes_nothing(stub, tenant, database_url):
    back_up_everything(stub, tenant)
    drift(database_url, tenant)
    live_before = query_all(
        database_url, "SELECT policy_id, payload FROM live_policies ORDER BY tenant_id, policy_id"
    )

    run = run_to_end(stub, tenant.external_id, "restore_preview", target=tenant.backup_set_id)
    n = len(tenant.policy_ids)
    assert run.status == SUCCEEDED and counts(run) == (n, n, 0)
    preview = {
        policy: (action, keys)
        for policy, action, keys in query_all(
            database_url,
            "SELECT policy_id, action, changed_keys FROM restore_previews WHERE run_id = %s",
            run.id,
        )
    }
    assert preview["pol-00000"] == ("update", ["extra", "setting"])
    assert preview["pol-00001"][0] == "create"
    assert {p for p, (action, _) in preview.items() if action == "unchanged"} == set(
        tenant.policy_ids[2:]
    )
    assert (
        query_all(
            database_url,
            "SELECT policy_id, payload FROM live_policies ORDER BY tenant_id, policy_id",
        )
        == live_before
    )


def test_restore_execute_writes_snapshots_back(stub, tenant, database_url):
    back_up_everything(stub, tenant)
    drift(database_url, tenant)
    run = run_to_end(stub, tenant.external_id, "restore_execute", target=tenant.backup_set_id)
    n = len(tenant.policy_ids)
    assert run.status == SUCCEEDED and counts(run) == (n, n, 0)
    assert live_payload(database_url, tenant.external_id, "pol-00000") == {
        "setting": "value-0",
        "enabled": True,
        "level": 0,
    }
    assert live_payload(database_url, tenant.external_id, "pol-00001") == {
        "setting": "value-1",
        "enabled": False,
        "level": 1,
    }
    outcomes = dict(
        query_all(
            database_url, "SELECT policy_id, outcome FROM restore_results WHERE run_id = %s", run.id
        )
    )
    assert outcomes["pol-00000"] == "updated" and outcomes["pol-00001"] == "created"
    assert {outcomes[p] for p in tenant.policy_ids[2:]} == {"unchanged"}


def test_restore_of_unknown_item_ids_fails_those_items(stub, tenant):
    back_up_everything(stub, tenant)
    run = run_to_end(
        stub,
        tenant.external_id,
        "restore_preview",
        target=tenant.backup_set_id,
        item_ids=["not-a-uuid", "00000000-0000-0000-0000-000000000000"],
    )
    assert run.status == FAILED and counts(run) == (2, 0, 2)
    assert dict(dict(run.safe_error.context)["errorCodes"]) == {"ITEM_NOT_FOUND": 2}


@pytest.mark.parametrize("run_type", ["restore_preview", "restore_execute"])
def test_restore_needs_an_existing_backup_set(run_type, stub, tenant):
    unknown = run_to_end(stub, tenant.external_id, run_type, target="bs-nope")
    assert unknown.status == FAILED and unknown.safe_error.code == "TARGET_NOT_FOUND"
    assert dict(unknown.safe_error.context) == {"targetObjectId": "bs-nope"}


# --- the TenantSource misbehaving (scripted stand-in for Microsoft Graph) ---


def test_rejected_restore_items_make_a_partial_run(make_stack):
    stack = make_stack(RUNSVC_TENANT_SOURCE=SCRIPTED, RUNSVC_TEST_SOURCE_REJECT="pol-00002")
    stack.start_server()
    stack.start_worker()
    stub = stack.stub()
    tenant = seed_tenant(stack.database_url, policies=4)
    back_up_everything(stub, tenant)
    for policy in tenant.policy_ids:
        set_live_payload(stack.database_url, tenant.external_id, policy, {"drift": policy})

    run = run_to_end(stub, tenant.external_id, "restore_execute", target=tenant.backup_set_id)
    assert run.status == PARTIAL and counts(run) == (4, 3, 1)
    assert run.safe_error.code == "ITEMS_FAILED"
    assert dict(dict(run.safe_error.context)["errorCodes"]) == {"SOURCE_REJECTED": 1}
    assert live_payload(stack.database_url, tenant.external_id, "pol-00002") == {
        "drift": "pol-00002"
    }
    rejected = query_all(
        stack.database_url,
        "SELECT policy_id, outcome, error_code FROM restore_results "
        "WHERE run_id = %s AND outcome = 'rejected'",
        run.id,
    )
    assert rejected == [("pol-00002", "rejected", "SOURCE_REJECTED")]


def test_transient_source_errors_are_retried(make_stack):
    stack = make_stack(
        RUNSVC_TENANT_SOURCE=SCRIPTED, RUNSVC_TEST_SOURCE_TRANSIENT="2", RUNSVC_SOURCE_RETRIES="4"
    )
    stack.start_server()
    stack.start_worker()
    tenant = seed_tenant(stack.database_url, policies=3)
    run = run_to_end(stack.stub(), tenant.external_id, "snapshot_capture")
    assert run.status == SUCCEEDED and counts(run) == (3, 3, 0)


def test_persistent_transient_errors_fail_the_item(make_stack):
    stack = make_stack(
        RUNSVC_TENANT_SOURCE=SCRIPTED, RUNSVC_TEST_SOURCE_TRANSIENT="10", RUNSVC_SOURCE_RETRIES="3"
    )
    stack.start_server()
    stack.start_worker()
    tenant = seed_tenant(stack.database_url, policies=2)
    run = run_to_end(stack.stub(), tenant.external_id, "snapshot_capture")
    assert run.status == FAILED
    assert dict(dict(run.safe_error.context)["errorCodes"]) == {"SOURCE_UNAVAILABLE": 2}
