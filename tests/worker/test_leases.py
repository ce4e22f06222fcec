"""Leases (SPEC §6, §7): renewed by short statements while a source call
hangs; an expired lease is taken over and the old owner's late writes are
refused; a killed worker's run is taken over within lease + reaper interval.
Every item's outcome is recorded exactly once."""

from __future__ import annotations

import json
import time

from google.protobuf.json_format import MessageToJson
from tenantpilot.runs.v1 import runs_pb2

from tests.support.db import query_one, run_bookkeeping, snapshot_count
from tests.support.runs import get, start, wait_terminal
from tests.support.seeding import seed_tenant
from tests.support.waiting import wait_until

SCRIPTED = "tests.support.scripted_source:create"


def lease_state(database_url: str, run_id: str) -> tuple:
    return query_one(
        database_url,
        "SELECT status, succeeded + failed, lease_expires_at, lease_expires_at > now(), "
        "lease_owner FROM runs WHERE id = %s",
        run_id,
    )


def test_a_hanging_source_call_times_out_while_the_lease_is_kept(make_stack):
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_HANG="pol-00003",  # its calls never return
        RUNSVC_SOURCE_TIMEOUT_SECONDS="1",
        RUNSVC_SOURCE_RETRIES="2",
        RUNSVC_LEASE_SECONDS="2",
        RUNSVC_BATCH_SIZE="4",
    )
    stack.start_server()
    stack.start_worker(threads=1)
    tenant = seed_tenant(stack.database_url, policies=8)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run

    samples = []  # (when, items done, lease expiry, lease still valid) while running
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, done, expires, valid, _ = lease_state(stack.database_url, run.id)
        if status not in ("running", "queued"):
            break
        if status == "running":
            samples.append((time.monotonic(), done, expires, valid))
        time.sleep(0.1)
    final = get(stub, run)

    assert final.status == runs_pb2.RUN_STATUS_PARTIAL
    assert (final.counts.total, final.counts.succeeded, final.counts.failed) == (8, 7, 1)
    context = json.loads(MessageToJson(final.safe_error.context))
    assert context["failedItemIds"] == ["pol-00003"]
    assert context["errorCodes"] == {"SOURCE_TIMEOUT": 1}
    # The lease never lapsed, and it moved on while no batch could finish:
    # the first batch hung for longer than a whole lease.
    assert all(valid for _, _, _, valid in samples)
    stalled = [(t, expires) for t, done, expires, _ in samples if done == 0]
    assert stalled[-1][0] - stalled[0][0] > 2, "the hang should outlast one lease"
    assert len({expires for _, expires in stalled}) >= 3
    book = run_bookkeeping(stack.database_url, run.id)
    assert book["attempts"] == 1
    assert book["outcomes"] == {"succeeded": 7, "failed": 1}


def test_an_expired_lease_is_taken_over_and_late_writes_are_refused(make_stack):
    # Each source call takes 3 s; the lease (30 s) is renewed every 10 s,
    # so the first worker learns of the takeover only when it writes.
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_DELAY="3",
        RUNSVC_BATCH_SIZE="5",
        RUNSVC_LEASE_SECONDS="30",
    )
    stack.start_server()
    first = stack.start_worker(threads=1)
    tenant = seed_tenant(stack.database_url, policies=20)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    first_owner = wait_until(lambda: lease_state(stack.database_url, run.id)[4])
    second = stack.start_worker(threads=1)

    def taken_over() -> bool:
        # Lapse the lease (as a stalled worker's would) until the other takes it.
        query_one(
            stack.database_url,
            "UPDATE runs SET lease_expires_at = now() - interval '1 second', "
            "dispatch_due_at = now() - interval '1 second' "
            "WHERE id = %s AND lease_owner = %s RETURNING 1",
            run.id,
            first_owner,
        )
        owner = lease_state(stack.database_url, run.id)[4]
        return owner is not None and owner != first_owner

    wait_until(taken_over, timeout=30, interval=0.3)
    final = wait_terminal(stub, run, timeout=90)
    assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert (final.counts.total, final.counts.succeeded, final.counts.failed) == (20, 20, 0)
    wait_until(lambda: "writes were refused" in first.output(), timeout=10)
    book = run_bookkeeping(stack.database_url, run.id)
    assert book["outcomes"] == {"succeeded": 20}, "each outcome exactly once"
    assert book["attempts"] == 2
    assert snapshot_count(stack.database_url, tenant.external_id) == 20
    assert f"run {run.id} claimed" in second.output()


def test_a_killed_worker_is_taken_over_within_lease_and_reaper_interval(make_stack):
    lease, interval = 2.0, 0.5
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_DELAY="0.05",
        RUNSVC_BATCH_SIZE="5",
        RUNSVC_LEASE_SECONDS=str(lease),
        RUNSVC_REAPER_INTERVAL_SECONDS=str(interval),
    )
    stack.start_server()
    first = stack.start_worker(threads=1)
    tenant = seed_tenant(stack.database_url, policies=300)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    wait_until(lambda: get(stub, run).counts.succeeded >= 10)
    second = stack.start_worker(threads=1)
    assert get(stub, run).status == runs_pb2.RUN_STATUS_RUNNING

    first.kill()  # SIGKILL to the group: no release, no ack, nothing
    killed_at = time.monotonic()
    wait_until(lambda: f"run {run.id} claimed" in second.output(), timeout=30)
    # Slack for a loaded machine: message delivery and the claim itself.
    assert time.monotonic() - killed_at <= lease + interval + 3

    final = wait_terminal(stub, run, timeout=90)
    assert (final.counts.total, final.counts.succeeded, final.counts.failed) == (300, 300, 0)
    book = run_bookkeeping(stack.database_url, run.id)
    assert book["outcomes"] == {"succeeded": 300}
    assert book["attempts"] == 2
    assert snapshot_count(stack.database_url, tenant.external_id) == 300
