"""Delivery per SPEC §6: at-least-once messages, one execution at a time
under a renewed lease, exact outcomes, and automatic recovery of lost
messages and killed workers."""

from __future__ import annotations

import uuid

from tenantpilot.runs.v1 import runs_pb2

from runsvc.broker import Dispatcher, build_broker
from tests.support.db import query_one, run_bookkeeping, snapshot_count
from tests.support.runs import get, start, wait_terminal
from tests.support.seeding import seed_tenant
from tests.support.waiting import wait_until

SCRIPTED = "tests.support.scripted_source:create"


def test_duplicate_messages_never_execute_a_run_twice(make_stack):
    stack = make_stack(
        RUNSVC_TENANT_SOURCE=SCRIPTED, RUNSVC_TEST_SOURCE_DELAY="0.02", RUNSVC_BATCH_SIZE="5"
    )
    stack.start_server()
    # Two worker processes with several threads each: plenty of takers.
    stack.start_worker(processes=2, threads=4)
    tenant = seed_tenant(stack.database_url, policies=60)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run

    wait_until(lambda: get(stub, run).status == runs_pb2.RUN_STATUS_RUNNING)
    dispatcher = Dispatcher(build_broker(stack.database_url), stack.env["RUNSVC_QUEUE"])
    try:
        for _ in range(10):
            dispatcher.send(uuid.UUID(run.id))
    finally:
        dispatcher.close()

    final = wait_terminal(stub, run)
    assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert (final.counts.total, final.counts.succeeded, final.counts.failed) == (60, 60, 0)
    book = run_bookkeeping(stack.database_url, run.id)
    assert book["attempts"] == 1, "only one execution may claim the run"
    assert book["outcomes"] == {"succeeded": 60}
    assert snapshot_count(stack.database_url, tenant.external_id) == 60


def lose_message(database_url: str, run_id: str) -> None:
    """Takes the run's message out of the Postgres broker's queue, unconsumed."""
    wait_until(
        lambda: query_one(
            database_url,
            "DELETE FROM dramatiq.queue WHERE message->'args'->>0 = %s RETURNING 1",
            run_id,
        ),
        timeout=10,
    )


def test_queued_run_whose_message_was_lost_is_dispatched_again(make_stack):
    stack = make_stack(own_database=True, RUNSVC_REDISPATCH_SECONDS="1")
    stack.start_server()
    tenant = seed_tenant(stack.database_url, policies=3)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run

    lose_message(stack.database_url, run.id)
    assert get(stub, run).status == runs_pb2.RUN_STATUS_QUEUED

    stack.start_worker()
    final = wait_terminal(stub, run, timeout=30)
    assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert final.counts.succeeded == 3
    # The reaper sent it (and recorded the send); the claim reset the backoff.
    dispatched_at, dispatch_count = query_one(
        stack.database_url, "SELECT dispatched_at, dispatch_count FROM runs WHERE id = %s", run.id
    )
    assert dispatched_at is not None and dispatch_count == 0


def test_a_lost_message_is_sent_again_on_its_own_queue_only(make_stack):
    # Two worker pools on separate queues of one database. Each reaper
    # recovers its own pool's runs: a message sent to the other pool's queue
    # would reach no worker that may claim the run, and back off its resend.
    ours = make_stack(own_database=True, RUNSVC_REDISPATCH_SECONDS="1")
    theirs = make_stack(database=ours.database_url, RUNSVC_REDISPATCH_SECONDS="1")
    ours.start_server()
    theirs.start_server()
    tenant = seed_tenant(ours.database_url, policies=3)
    our_run = start(ours.stub(), tenant.external_id, "snapshot_capture").run
    their_run = start(theirs.stub(), tenant.external_id, "snapshot_capture", target="t").run
    lose_message(ours.database_url, our_run.id)
    lose_message(ours.database_url, their_run.id)

    # Their reaper recovers their run, which was due with ours...
    theirs.start_worker()
    assert wait_terminal(theirs.stub(), their_run).status == runs_pb2.RUN_STATUS_SUCCEEDED
    # ...and left ours alone: still queued, never sent again.
    status, dispatched_at = query_one(
        ours.database_url, "SELECT status, dispatched_at FROM runs WHERE id = %s", our_run.id
    )
    assert (status, dispatched_at) == ("queued", None)

    ours.start_worker()
    final = wait_terminal(ours.stub(), our_run, timeout=30)
    assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert final.counts.succeeded == 3


def test_worker_killed_mid_run_loses_nothing(make_stack):
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_DELAY="0.01",
        RUNSVC_BATCH_SIZE="10",
        RUNSVC_LEASE_SECONDS="2",
    )
    stack.start_server()
    first = stack.start_worker(threads=1)
    tenant = seed_tenant(stack.database_url, policies=300)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run

    wait_until(lambda: get(stub, run).counts.succeeded >= 40)
    first.kill()  # SIGKILL: no lease release, no ack, nothing
    stopped_at = get(stub, run)
    assert stopped_at.status == runs_pb2.RUN_STATUS_RUNNING
    assert 40 <= stopped_at.counts.succeeded < 300

    stack.start_worker(threads=1)
    final = wait_terminal(stub, run, timeout=90)
    assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert (final.counts.total, final.counts.succeeded, final.counts.failed) == (300, 300, 0)
    book = run_bookkeeping(stack.database_url, run.id)
    assert book["outcomes"] == {"succeeded": 300}
    assert book["attempts"] == 2
    # Each policy has exactly one snapshot: redone items stored nothing twice.
    assert snapshot_count(stack.database_url, tenant.external_id) == 300


def test_run_that_keeps_killing_its_workers_ends_failed(make_stack):
    stack = make_stack(own_database=True, RUNSVC_MAX_ATTEMPTS="1", RUNSVC_LEASE_SECONDS="1")
    stack.start_server()
    tenant = seed_tenant(stack.database_url, policies=2)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    # Pretend its one allowed attempt died: running, lease long expired.
    query_one(
        stack.database_url,
        "UPDATE runs SET status = 'running', started_at = now(), attempts = 1, "
        "lease_owner = 'dead-worker', lease_expires_at = now() - interval '1 minute', "
        "dispatch_due_at = now() WHERE id = %s RETURNING 1",
        run.id,
    )
    query_one(
        stack.database_url,
        "DELETE FROM dramatiq.queue WHERE message->'args'->>0 = %s RETURNING 1",
        run.id,
    )
    stack.start_worker()
    final = wait_terminal(stub, run, timeout=30)
    assert final.status == runs_pb2.RUN_STATUS_FAILED
    assert final.safe_error.code == "RUN_ATTEMPTS_EXHAUSTED"
    assert final.counts.failed == final.counts.total
