"""Cooperative stop (SPEC §7): SIGTERM or SIGINT to a real `runsvc worker`,
to its main process or to its whole process group, mid-run. The worker
gives the run back within the grace period, the attempt is not counted,
and another worker finishes with exact counts. Also: a message that
arrives while a worker boots is not lost."""

from __future__ import annotations

import os
import signal
import time

import pytest
from tenantpilot.runs.v1 import runs_pb2

from tests.support.db import query_one, run_bookkeeping, snapshot_count
from tests.support.runs import get, start, wait_terminal
from tests.support.seeding import seed_tenant
from tests.support.waiting import wait_until

SCRIPTED = "tests.support.scripted_source:create"
GRACE = 20.0  # RUNSVC_SHUTDOWN_GRACE_SECONDS' default


def slow_stack(make_stack, **env):
    """Runs that take a while: every source call takes 0.2 s, 5 items a batch."""
    return make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_DELAY="0.2",
        RUNSVC_BATCH_SIZE="5",
        **env,
    )


def lease_owner(database_url: str, run_id: str) -> str | None:
    return query_one(database_url, "SELECT lease_owner FROM runs WHERE id = %s", run_id)[0]


def send_stop(worker, how: str) -> None:
    if how == "main-sigterm":
        os.kill(worker.pid, signal.SIGTERM)
    elif how == "group-sigterm":
        os.killpg(worker.pid, signal.SIGTERM)
    else:
        os.killpg(worker.pid, signal.SIGINT)  # Ctrl-C in a terminal


@pytest.mark.parametrize("how", ["main-sigterm", "group-sigterm", "group-sigint"])
def test_stopped_worker_gives_its_run_to_another(make_stack, how):
    # 25 items/s: 600 items outlast the second worker's boot on a loaded machine.
    policies = 600
    stack = slow_stack(make_stack)
    stack.start_server()
    first = stack.start_worker(threads=1)
    tenant = seed_tenant(stack.database_url, policies=policies)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    wait_until(lambda: get(stub, run).counts.succeeded >= 10)
    owner = lease_owner(stack.database_url, run.id)
    assert owner is not None and f":{os.getpid()}:" not in owner
    second = stack.start_worker(threads=1)
    assert get(stub, run).counts.succeeded < policies, "the run must still be in progress"

    signalled = time.monotonic()
    send_stop(first, how)
    first.proc.wait(timeout=GRACE + 5)
    exited_after = time.monotonic() - signalled
    assert exited_after <= GRACE + 5
    assert "given back" in first.output()
    # Another worker takes it at once (the stopping one sent it again).
    wait_until(lambda: f"run {run.id} claimed" in second.output(), timeout=15)

    final = wait_terminal(stub, run, timeout=90)
    assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
    counts = (final.counts.total, final.counts.succeeded, final.counts.failed)
    assert counts == (policies, policies, 0)
    book = run_bookkeeping(stack.database_url, run.id)
    assert book["outcomes"] == {"succeeded": policies}
    assert book["attempts"] == 1, "a cooperative stop is not a failed attempt"
    assert snapshot_count(stack.database_url, tenant.external_id) == policies
    assert "Killing worker process" not in first.output()
    second.stop()


def test_ten_stops_in_a_row_do_not_exhaust_the_attempts(make_stack):
    # RUNSVC_MAX_ATTEMPTS stays at its default (5). Each worker boots while
    # the one before it works, then that one is stopped: a rolling deploy.
    # The deploy's workers go at 8 items/s, so that the run outlasts ten
    # steps however slowly workers boot and stop (2,000 items: over 4
    # minutes); the last worker finishes it fast.
    policies = 2000
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_DELAY="0.25",
        RUNSVC_BATCH_SIZE="2",
    )
    stack.start_server()
    tenant = seed_tenant(stack.database_url, policies=policies)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    working = stack.start_worker(threads=1)
    wait_until(lambda: get(stub, run).counts.succeeded > 0)
    stopped = []
    for round_ in range(10):
        last = round_ == 9
        next_worker = stack.start_worker(
            threads=1, **({"RUNSVC_TEST_SOURCE_DELAY": "0.005"} if last else {})
        )
        owner = lease_owner(stack.database_url, run.id)
        if round_ % 2:
            working.signal_group(signal.SIGTERM)
        else:
            os.kill(working.pid, signal.SIGTERM)
        stopped.append(working)
        working = next_worker
        wait_until(lambda w=working: f"run {run.id} claimed" in w.output())
        assert lease_owner(stack.database_url, run.id) != owner
        assert get(stub, run).status == runs_pb2.RUN_STATUS_RUNNING, "the run ended too soon"
        # The stopped one is gone before the next deploy step, as in a
        # rolling deploy (and its connections with it: a loaded machine's
        # Postgres at its default 100 connections has no room for eleven
        # workers at once).
        stopped[-1].proc.wait(timeout=GRACE + 5)

    final = wait_terminal(stub, run, timeout=120)
    assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
    counts = (final.counts.total, final.counts.succeeded, final.counts.failed)
    assert counts == (policies, policies, 0)
    book = run_bookkeeping(stack.database_url, run.id)
    assert book["outcomes"] == {"succeeded": policies}
    assert book["attempts"] == 1
    for worker in stopped:
        assert worker.output().count("given back: this worker is stopping") == 1


def test_messages_that_arrive_while_a_worker_boots_are_not_lost(make_stack):
    # The reaper would only resend after an hour: each run must be executed
    # from its first message. The source takes 2 s to build, as a slow boot.
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_BOOT_DELAY="2",
        RUNSVC_REDISPATCH_SECONDS="3600",
    )
    stack.start_server()
    tenant = seed_tenant(stack.database_url, policies=3)
    stub = stack.stub()
    runs = [
        start(stub, tenant.external_id, "snapshot_capture", target=f"scope-{i}").run
        for i in range(6)
    ]
    worker = stack.start_worker(threads=2)
    for run in runs:
        final = wait_terminal(stub, run, timeout=60)
        assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
        assert final.counts.succeeded == 3
        assert run_bookkeeping(stack.database_url, run.id)["attempts"] == 1
    assert "has not booted" not in worker.output()
    assert "Failed to process message" not in worker.output()


def test_a_stop_during_a_hung_source_call_abandons_the_batch_at_the_end_of_grace(make_stack):
    grace = 2
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_HANG="pol-00001",
        RUNSVC_SOURCE_TIMEOUT_SECONDS="600",  # the call would wait far longer
        RUNSVC_SHUTDOWN_GRACE_SECONDS=str(grace),
        RUNSVC_BATCH_SIZE="4",
    )
    stack.start_server()
    worker = stack.start_worker(threads=1)
    tenant = seed_tenant(stack.database_url, policies=8)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    wait_until(lambda: f"run {run.id} claimed" in worker.output())

    signalled = time.monotonic()
    worker.signal_group(signal.SIGTERM)
    worker.proc.wait(timeout=grace + 5)
    assert time.monotonic() - signalled <= grace + 5
    assert "given back: this worker is stopping" in worker.output()
    status, attempts, released, done = query_one(
        stack.database_url,
        "SELECT status, attempts, lease_expires_at <= now(), succeeded + failed "
        "FROM runs WHERE id = %s",
        run.id,
    )
    # Given back, due at once, the attempt not counted, nothing of the batch recorded.
    assert (status, attempts, released, done) == ("running", 0, True, 0)
