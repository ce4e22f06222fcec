"""Batches end to end: a bad item fails only itself (the worker retries a
failed batch statement in halves), and the built-in TenantSource is
set-based, paged, bounded by its deadline and idempotent in its writes."""

from __future__ import annotations

import json

import pytest
from google.protobuf.json_format import MessageToJson
from psycopg_pool import ConnectionPool
from tenantpilot.runs.v1 import runs_pb2

from runsvc.model import LivePolicy
from runsvc.source.port import WRITTEN, Deadline, SourceRejected, SourceTimeout
from runsvc.source.postgres import PostgresTenantSource
from tests.support.db import query_all
from tests.support.runs import start, wait_terminal
from tests.support.seeding import seed_tenant

SCRIPTED = "tests.support.scripted_source:create"


def test_an_item_that_breaks_its_batch_statement_fails_alone(make_stack):
    stack = make_stack(
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_BAD_PAYLOAD="pol-00005",
        RUNSVC_BATCH_SIZE="50",
    )
    stack.start_server()
    stack.start_worker()
    tenant = seed_tenant(stack.database_url, policies=12)
    stub = stack.stub()
    run = wait_terminal(stub, start(stub, tenant.external_id, "snapshot_capture").run)
    assert run.status == runs_pb2.RUN_STATUS_PARTIAL
    assert (run.counts.total, run.counts.succeeded, run.counts.failed) == (12, 11, 1)
    context = json.loads(MessageToJson(run.safe_error.context))
    assert context == {
        "failedCount": 1,
        "total": 12,
        "failedItemIds": ["pol-00005"],
        "errorCodes": {"INTERNAL_ERROR": 1},
    }
    stored = query_all(
        stack.database_url,
        "SELECT s.policy_id FROM policy_snapshots s JOIN tenants t ON t.id = s.tenant_id "
        "WHERE t.external_id = %s ORDER BY 1",
        tenant.external_id,
    )
    assert [p for (p,) in stored] == [p for p in tenant.policy_ids if p != "pol-00005"]


@pytest.fixture
def pool(database_url):
    with ConnectionPool(database_url, min_size=1, max_size=2, kwargs={"autocommit": True}) as p:
        yield p


def test_the_built_in_source_lists_by_pages(pool, database_url):
    tenant = seed_tenant(database_url, policies=7)
    source = PostgresTenantSource(pool, page_size=3)
    pages, cursor = [], None
    while True:
        page = source.list_policy_ids(tenant.external_id, cursor=cursor, deadline=Deadline.after(5))
        pages.append(page.ids)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == tenant.policy_ids


def test_the_built_in_source_answers_per_item_and_writes_idempotently(pool, database_url):
    tenant = seed_tenant(database_url, policies=2)
    source = PostgresTenantSource(pool)
    found = source.get_policies(
        tenant.external_id, ["pol-00001", "nope"], deadline=Deadline.after(5)
    )
    assert found["nope"] is None
    assert isinstance(found["pol-00001"], LivePolicy)

    policy = LivePolicy("pol-new", "deviceCompliancePolicies", "New", {"a": 1})
    for _ in range(2):  # at-least-once: the second write changes nothing
        answer = source.put_policies(tenant.external_id, [policy], deadline=Deadline.after(5))
        assert answer == {"pol-new": WRITTEN}
    rows = query_all(
        database_url,
        "SELECT lp.policy_type, lp.payload FROM live_policies lp JOIN tenants t "
        "ON t.id = lp.tenant_id WHERE t.external_id = %s AND lp.policy_id = 'pol-new'",
        tenant.external_id,
    )
    assert rows == [("deviceCompliancePolicies", {"a": 1})]

    with pytest.raises(SourceRejected) as rejected:
        source.put_policies("no-such-tenant", [policy], deadline=Deadline.after(5))
    assert rejected.value.code == "TENANT_NOT_FOUND"
    with pytest.raises(SourceTimeout):
        source.get_policies(tenant.external_id, ["pol-00001"], deadline=Deadline.after(0))


def test_work_list_pages_and_outcomes_past_smallint_positions(pool, database_url):
    # A run of a million items has positions far past 32,767: the page and
    # record statements must not do their range arithmetic in smallint.
    from runsvc.store import runs as store
    from runsvc.store.runs import ItemOutcome
    from tests.support.db import query_one

    run_id = query_one(
        database_url,
        "INSERT INTO runs (tenant_external_id, run_type, status, started_at, lease_owner, "
        "lease_expires_at, items_resolved, total, dispatch_due_at) VALUES ('t', "
        "'snapshot_capture', 'running', now(), 'me', now() + interval '1 hour', true, 5, now()) "
        "RETURNING id",
    )[0]
    query_one(
        database_url,
        "INSERT INTO run_items (run_id, position, item_id) "
        "SELECT %s, g, 'item-' || g FROM generate_series(999995, 999999) g RETURNING 1",
        run_id,
    )
    with pool.connection() as conn:
        # 32,000 travels as a smallint: 32,000 + 1,000 overflowed once.
        assert store.run_items_pending_page(conn, run_id, after=32_000, limit=1000) == []
        assert store.run_items_next_pending(conn, run_id, after=40_000) == 999_995
        page = store.run_items_pending_page(conn, run_id, after=999_994, limit=1000)
        assert [p for p, _ in page] == list(range(999_995, 1_000_000))
        outcomes = [ItemOutcome(p, True) for p, _ in page]
        assert store.run_items_record(conn, run_id, outcomes) == (5, 0)
        assert store.run_items_next_pending(conn, run_id, after=0) is None
