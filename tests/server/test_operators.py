"""The operators' RPCs against the real server, worker and Postgres:
ListRuns (filters, keyset pages while runs arrive), ListRunItems, CancelRun
(queued and running: counts, audit, time to terminal), RetryRun (more than
10,000 failed items, copied in the database) and who may call them."""

from __future__ import annotations

import time
import uuid

import grpc
import psycopg
import pytest
from tenantpilot.runs.v1 import runs_pb2

from runsvc.seed import seed
from runsvc.store.queries import QUERIES
from tests.support.auth import new_token
from tests.support.database import fresh_database
from tests.support.db import count_runs, query_all, query_one
from tests.support.runs import get, start, wait_terminal
from tests.support.seeding import seed_tenant

QUEUED, RUNNING, SUCCEEDED, PARTIAL, FAILED = (
    runs_pb2.RUN_STATUS_QUEUED,
    runs_pb2.RUN_STATUS_RUNNING,
    runs_pb2.RUN_STATUS_SUCCEEDED,
    runs_pb2.RUN_STATUS_PARTIAL,
    runs_pb2.RUN_STATUS_FAILED,
)
ITEM_FAILED = runs_pb2.ITEM_OUTCOME_FAILED


def list_all(stub, tenant: str, *, page_size: int, **filters) -> list[runs_pb2.RunRecord]:
    runs: list[runs_pb2.RunRecord] = []
    token = ""
    while True:
        page = stub.ListRuns(
            runs_pb2.ListRunsRequest(
                tenant_external_id=tenant, page_size=page_size, page_token=token, **filters
            ),
            timeout=10,
        )
        assert len(page.runs) <= page_size
        runs += page.runs
        token = page.next_page_token
        if not token:
            return runs


def items_of(stub, run: runs_pb2.RunRecord, **filters) -> list[runs_pb2.RunItem]:
    items: list[runs_pb2.RunItem] = []
    token = ""
    while True:
        page = stub.ListRunItems(
            runs_pb2.ListRunItemsRequest(
                tenant_external_id=run.tenant_external_id,
                run_type=run.type,
                run_id=run.id,
                page_token=token,
                **filters,
            ),
            timeout=30,
        )
        items += page.items
        token = page.next_page_token
        if not token:
            return items


def cancel(stub, run: runs_pb2.RunRecord) -> runs_pb2.RunRecord:
    request = runs_pb2.CancelRunRequest(
        tenant_external_id=run.tenant_external_id, run_type=run.type, run_id=run.id
    )
    return stub.CancelRun(request, timeout=10).run


def retry(stub, run: runs_pb2.RunRecord) -> runs_pb2.RetryRunResponse:
    request = runs_pb2.RetryRunRequest(
        tenant_external_id=run.tenant_external_id, run_type=run.type, run_id=run.id
    )
    return stub.RetryRun(request, timeout=30)


def newest_first(runs: list[runs_pb2.RunRecord]) -> bool:
    keys = [(r.created_at.ToDatetime(), r.id) for r in runs]
    return keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)


# --- ListRuns -----------------------------------------------------------------


def test_pages_stay_correct_while_runs_arrive(idle_stub, tenant):
    tid = tenant.external_id
    before = {
        start(idle_stub, tid, "snapshot_capture", payload_hash=f"h{n}").run.id for n in range(240)
    }
    seen: list[runs_pb2.RunRecord] = []
    arrived: set[str] = set()
    token = ""
    while True:
        page = idle_stub.ListRuns(
            runs_pb2.ListRunsRequest(tenant_external_id=tid, page_size=37, page_token=token),
            timeout=10,
        )
        seen += page.runs
        # New runs between every two pages: newer than the walk's position,
        # so they neither repeat nor push runs out of later pages.
        for _ in range(3):
            arrived.add(
                start(idle_stub, tid, "snapshot_capture", payload_hash=uuid.uuid4().hex).run.id
            )
        token = page.next_page_token
        if not token:
            break
    ids = [r.id for r in seen]
    assert len(ids) == len(set(ids)), "a run was listed twice"
    assert set(ids) == before, "a run that existed before the walk was skipped"
    assert not set(ids) & arrived
    assert newest_first(seen)
    # A fresh walk from the first page sees the arrivals too, newest first.
    again = list_all(idle_stub, tid, page_size=1000)
    assert {r.id for r in again} == before | arrived and newest_first(again)


def test_filters_by_type_status_target_and_created_range(stub, idle_stub, tenant):
    tid = tenant.external_id
    queued = [start(idle_stub, tid, "snapshot_capture", payload_hash=f"q{n}").run for n in range(4)]
    previews = [
        start(idle_stub, tid, "restore_preview", target=f"bs-{n}", payload_hash="p").run
        for n in range(3)
    ]
    succeeded = [
        wait_terminal(stub, start(stub, tid, "snapshot_capture", payload_hash=f"s{n}").run)
        for n in range(3)
    ]
    failed = wait_terminal(
        stub, start(stub, tid, "backup_set_add_policies", target="bs-none", item_ids=["x"]).run
    )
    assert {r.status for r in succeeded} == {SUCCEEDED} and failed.status == FAILED

    def ids(**filters) -> set[str]:
        return {r.id for r in list_all(idle_stub, tid, page_size=2, **filters)}

    everything = ids()
    assert everything == {r.id for r in [*queued, *previews, *succeeded, failed]}
    assert ids(run_types=["restore_preview"]) == {r.id for r in previews}
    assert ids(run_types=["restore_preview", "backup_set_add_policies"]) == {
        r.id for r in [*previews, failed]
    }
    assert ids(statuses=[QUEUED]) == {r.id for r in [*queued, *previews]}
    assert ids(statuses=[SUCCEEDED, FAILED]) == {r.id for r in [*succeeded, failed]}
    assert ids(run_types=["snapshot_capture"], statuses=[QUEUED]) == {r.id for r in queued}
    assert ids(target_object_id="bs-1") == {previews[1].id}
    # Created range: [after, before) around the three previews.
    after = previews[0].created_at
    before = succeeded[0].created_at
    assert ids(created_after=after, created_before=before) == {r.id for r in previews}
    assert ids(created_after=before) == {r.id for r in [*succeeded, failed]}
    assert ids(created_before=after) == {r.id for r in queued}


def test_a_page_token_continues_only_its_own_listing(idle_stub, tenant):
    tid = tenant.external_id
    for n in range(3):
        start(idle_stub, tid, "snapshot_capture", payload_hash=f"t{n}")
    first = idle_stub.ListRuns(
        runs_pb2.ListRunsRequest(tenant_external_id=tid, page_size=1), timeout=10
    )
    assert first.next_page_token
    token = first.next_page_token
    for other in (
        runs_pb2.ListRunsRequest(tenant_external_id=tid, statuses=[QUEUED], page_token=token),
        runs_pb2.ListRunsRequest(tenant_external_id=tid + "-other", page_token=token),
        runs_pb2.ListRunsRequest(tenant_external_id=tid, page_token="not a token"),
        runs_pb2.ListRunsRequest(tenant_external_id=tid, page_token=token[:-3]),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            idle_stub.ListRuns(other, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith("page_token: ")


def test_list_runs_uses_the_index(admin_database_url):
    # A tenant with thousands of finished runs, in a database of its own
    # (planner statistics of its own): ListRuns' page query, as the server
    # sends it, reads the tenant's newest runs off the index, in its order.
    with fresh_database(admin_database_url) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO runs (tenant_external_id, run_type, status, total, succeeded,
                                 created_at, started_at, finished_at, dispatch_due_at)
               SELECT CASE WHEN i % 4 = 0 THEN 'other' ELSE 'contoso' END, 'snapshot_capture',
                      'succeeded', 0, 0, t, t, t, t
               FROM generate_series(1, 20000) AS i,
                    LATERAL (SELECT now() - make_interval(secs => i)) AS at(t)"""
        )
        conn.execute("ANALYZE runs")
        params = {
            "tenant": "contoso",
            "run_types": None,
            "statuses": None,
            "target_object_id": None,
            "created_after": None,
            "created_before": None,
            "after_created_at": None,
            "after_id": None,
            "limit": 51,
        }
        plan = "\n".join(
            row[0] for row in conn.execute("EXPLAIN " + QUERIES["run_list"], params).fetchall()
        )
    assert "runs_by_tenant_newest" in plan, plan
    assert "Sort" not in plan, plan


# --- ListRunItems -------------------------------------------------------------


def test_items_in_order_with_outcome_error_and_detail(stub, tenant):
    wanted = [tenant.policy_ids[0], "pol-missing", tenant.policy_ids[1]]
    run = wait_terminal(
        stub,
        start(
            stub,
            tenant.external_id,
            "backup_set_add_policies",
            target=tenant.backup_set_id,
            item_ids=wanted,
        ).run,
    )
    assert run.status == PARTIAL
    items = items_of(stub, run, page_size=1)
    assert [i.item_id for i in items] == wanted
    assert [i.position for i in items] == [0, 1, 2]
    assert [i.outcome for i in items] == [
        runs_pb2.ITEM_OUTCOME_SUCCEEDED,
        ITEM_FAILED,
        runs_pb2.ITEM_OUTCOME_SUCCEEDED,
    ]
    assert items[1].error_code == "POLICY_NOT_FOUND" and not items[0].HasField("error_code")
    assert all(i.HasField("finished_at") for i in items)
    assert set(items[0].detail.fields) == {"backupItemId", "snapshotId"}
    failed = items_of(stub, run, outcomes=[ITEM_FAILED])
    assert [i.item_id for i in failed] == ["pol-missing"]
    assert items_of(stub, run, outcomes=[runs_pb2.ITEM_OUTCOME_PENDING]) == []


def test_restore_preview_items_say_what_would_change(stub, tenant, database_url):
    backup = start(
        stub,
        tenant.external_id,
        "backup_set_add_policies",
        target=tenant.backup_set_id,
        item_ids=tenant.policy_ids[:2],
    )
    wait_terminal(stub, backup.run)
    seed(
        database_url,
        {
            "tenants": [
                {
                    "externalId": tenant.external_id,
                    "policies": [
                        {
                            "id": tenant.policy_ids[0],
                            "type": "deviceConfiguration",
                            "displayName": "Policy 0",
                            "payload": {"setting": "changed", "enabled": True, "level": 0},
                        }
                    ],
                }
            ]
        },
    )
    preview = wait_terminal(
        stub, start(stub, tenant.external_id, "restore_preview", target=tenant.backup_set_id).run
    )
    details = {i.detail.fields["policyId"].string_value: i.detail for i in items_of(stub, preview)}
    assert details[tenant.policy_ids[0]].fields["action"].string_value == "update"
    changed = details[tenant.policy_ids[0]].fields["changedKeys"].list_value.values
    assert [v.string_value for v in changed] == ["setting"]
    assert details[tenant.policy_ids[1]].fields["action"].string_value == "unchanged"


# --- CancelRun ----------------------------------------------------------------


def audit_actions(database_url: str, run_id: str) -> list[str]:
    rows = query_all(
        database_url,
        "SELECT action FROM audit_events WHERE run_id = %s ORDER BY id",
        uuid.UUID(run_id),
    )
    return [action for (action,) in rows]


def test_cancel_of_a_queued_run_ends_it_at_once(idle_stub, tenant, database_url):
    run = start(idle_stub, tenant.external_id, "snapshot_capture", item_ids=["a", "b", "c"]).run
    assert run.status == QUEUED
    began = time.monotonic()
    cancelled = cancel(idle_stub, run)
    took = time.monotonic() - began
    print(f"CancelRun -> terminal of a queued run: {took * 1000:.1f} ms")
    assert cancelled.status == FAILED and cancelled.safe_error.code == "CANCELLED"
    assert cancelled.HasField("finished_at") and cancelled.HasField("cancel_requested_at")
    counts = cancelled.counts
    assert (counts.total, counts.succeeded, counts.failed) == (3, 0, 3)
    assert get(idle_stub, run) == cancelled
    items = items_of(idle_stub, cancelled)
    assert [(i.item_id, i.outcome, i.error_code) for i in items] == [
        (item_id, ITEM_FAILED, "CANCELLED") for item_id in ("a", "b", "c")
    ]
    # Twice is fine: the same record, nothing changed.
    assert cancel(idle_stub, run) == cancelled
    assert audit_actions(database_url, run.id) == ["run.start", "run.cancel", "run.cancel"]


def test_cancel_of_a_run_that_ended_otherwise_is_failed_precondition(stub, tenant, database_url):
    done = wait_terminal(stub, start(stub, tenant.external_id, "snapshot_capture").run)
    assert done.status == SUCCEEDED
    with pytest.raises(grpc.RpcError) as refused:
        cancel(stub, done)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert get(stub, done) == done
    assert audit_actions(database_url, done.id) == ["run.start"]


def test_cancel_of_a_running_run_stops_it_at_the_next_batch(make_stack, database_url):
    slow = make_stack(
        RUNSVC_TENANT_SOURCE="tests.support.scripted_source:create",
        RUNSVC_TEST_SOURCE_DELAY="0.02",
        RUNSVC_BATCH_SIZE="10",
    )
    slow.start_server()
    slow.start_worker()
    stub = slow.stub()
    tenant = seed_tenant(database_url, policies=400)
    run = start(stub, tenant.external_id, "snapshot_capture").run
    deadline = time.monotonic() + 60
    while (current := get(stub, run)).counts.succeeded == 0:
        assert time.monotonic() < deadline, "the run never progressed"
        time.sleep(0.05)
    assert current.status == RUNNING
    began = time.monotonic()
    asked = cancel(stub, run)
    assert asked.status == RUNNING and asked.HasField("cancel_requested_at")
    final = wait_terminal(stub, run, timeout=30)
    took = time.monotonic() - began
    print(f"CancelRun -> terminal of a running run: {took * 1000:.0f} ms")
    assert final.status == FAILED and final.safe_error.code == "CANCELLED"
    total, succeeded, failed = final.counts.total, final.counts.succeeded, final.counts.failed
    assert total == 400 and succeeded + failed == total and 0 < succeeded < total
    cancelled = items_of(stub, final, outcomes=[ITEM_FAILED])
    assert len(cancelled) == failed and {i.error_code for i in cancelled} == {"CANCELLED"}


# --- RetryRun -----------------------------------------------------------------


def test_retry_of_a_partial_run_copies_more_than_10000_failed_items(
    make_stack, idle_stub, database_url
):
    gone, kept = 10_030, 20
    tenant = f"retry-{uuid.uuid4().hex[:10]}"
    policies = [f"old-{n:05d}" for n in range(gone)] + [f"pol-{n:05d}" for n in range(kept)]
    seed(
        database_url,
        {
            "tenants": [
                {
                    "externalId": tenant,
                    "policies": [
                        {"id": p, "type": "t", "displayName": p, "payload": {"p": p}}
                        for p in policies
                    ],
                }
            ]
        },
    )
    # The policies are listed when the run starts, and most are deleted in
    # the tenant by the time their item is processed.
    flaky = make_stack(
        RUNSVC_TENANT_SOURCE="tests.support.scripted_source:create",
        RUNSVC_TEST_SOURCE_GONE="old-",
        RUNSVC_BATCH_SIZE="1000",
    )
    flaky.start_server()
    flaky.start_worker(threads=1)
    first = wait_terminal(
        flaky.stub(), start(flaky.stub(), tenant, "snapshot_capture").run, timeout=240
    )
    assert first.status == PARTIAL
    assert (first.counts.total, first.counts.failed) == (gone + kept, gone)

    # Retried through the idle server: the new run stays queued to be looked at.
    retried = retry(idle_stub, first)
    assert not retried.reused
    run = retried.run
    assert run.status == QUEUED and run.retry_of_run_id == first.id
    assert run.counts.total == gone
    (requested,) = query_one(
        database_url, "SELECT requested_item_ids FROM runs WHERE id = %s", uuid.UUID(run.id)
    )
    assert requested == [f"old-{n:05d}" for n in range(gone)]
    assert audit_actions(database_url, run.id) == ["run.retry"]
    # Dedupe as for StartRun: while it is active, retrying again reuses it.
    again = retry(idle_stub, first)
    assert again.reused and again.run.id == run.id
    listed = idle_stub.ListRuns(
        runs_pb2.ListRunsRequest(tenant_external_id=tenant, page_size=1), timeout=10
    ).runs
    assert listed[0].id == run.id and listed[0].retry_of_run_id == first.id


def test_retry_of_a_run_that_did_not_fail_is_failed_precondition(
    stub, idle_stub, tenant, database_url
):
    done = wait_terminal(stub, start(stub, tenant.external_id, "snapshot_capture").run)
    active = start(idle_stub, tenant.external_id, "snapshot_capture", payload_hash="x").run
    before = count_runs(database_url, tenant.external_id)
    for run in (done, active):
        with pytest.raises(grpc.RpcError) as refused:
            retry(idle_stub, run)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert count_runs(database_url, tenant.external_id) == before
    assert audit_actions(database_url, done.id) == ["run.start"]


# --- who may call them --------------------------------------------------------


def test_each_new_rpc_is_tenant_scoped_and_cancel_and_retry_are_for_operators(
    idle_stack, database_url
):
    a, b = seed_tenant(database_url), seed_tenant(database_url)
    operator = idle_stack.stub()
    run_b = start(operator, b.external_id, "snapshot_capture", item_ids=["x"]).run
    cancelled_b = cancel(operator, run_b)  # failed: retryable
    for role in ("viewer", "operator"):
        token = new_token(database_url, role=role, tenants=[a.external_id])
        caller = idle_stack.stub(token)
        # B's tenant: refused before anything is read.
        for method, request in calls(b.external_id, run_b):
            with pytest.raises(grpc.RpcError) as refused:
                getattr(caller, method)(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
        # B's run under A's tenant: not found, existence never leaks.
        for method, request in calls(a.external_id, run_b)[1:]:
            with pytest.raises(grpc.RpcError) as missing:
                getattr(caller, method)(request, timeout=10)
            expected = grpc.StatusCode.NOT_FOUND
            if role == "viewer" and method in ("CancelRun", "RetryRun"):
                expected = grpc.StatusCode.PERMISSION_DENIED
            assert missing.value.code() == expected, (role, method)
        listed = caller.ListRuns(runs_pb2.ListRunsRequest(tenant_external_id=a.external_id))
        assert run_b.id not in {r.id for r in listed.runs}
    assert get(operator, run_b) == cancelled_b
    assert audit_actions(database_url, run_b.id) == ["run.start", "run.cancel"]


def calls(tenant: str, run: runs_pb2.RunRecord) -> list:
    address = dict(tenant_external_id=tenant, run_type=run.type, run_id=run.id)
    return [
        ("ListRuns", runs_pb2.ListRunsRequest(tenant_external_id=tenant)),
        ("ListRunItems", runs_pb2.ListRunItemsRequest(**address)),
        ("CancelRun", runs_pb2.CancelRunRequest(**address)),
        ("RetryRun", runs_pb2.RetryRunRequest(**address)),
    ]
