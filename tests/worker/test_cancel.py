"""The worker's half of CancelRun (SPEC §8): runs.cancel_requested_at, set
here directly in the database, stops a running run at its next batch; it
ends failed with CANCELLED, and every item never attempted fails with it."""

from __future__ import annotations

import json

from google.protobuf.json_format import MessageToJson
from tenantpilot.runs.v1 import runs_pb2

from tests.support.db import query_all, query_one
from tests.support.runs import get, start, wait_terminal
from tests.support.seeding import seed_tenant
from tests.support.waiting import wait_until

SCRIPTED = "tests.support.scripted_source:create"


def test_a_cancel_asked_for_stops_the_run_at_its_next_batch(make_stack):
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_DELAY="0.1",
        RUNSVC_BATCH_SIZE="5",
    )
    stack.start_server()
    stack.start_worker(threads=1)
    tenant = seed_tenant(stack.database_url, policies=1000)  # ~20 s to the end
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    wait_until(lambda: get(stub, run).counts.succeeded >= 10)
    query_one(
        stack.database_url,
        "UPDATE runs SET cancel_requested_at = now() WHERE id = %s RETURNING 1",
        run.id,
    )

    final = wait_terminal(stub, run, timeout=30)
    assert final.status == runs_pb2.RUN_STATUS_FAILED
    assert final.safe_error.code == "CANCELLED"
    counts = final.counts
    assert counts.total == 1000 and counts.succeeded + counts.failed == 1000
    assert 10 <= counts.succeeded < 1000
    context = json.loads(MessageToJson(final.safe_error.context))
    outcomes = dict(
        query_all(
            stack.database_url,
            "SELECT coalesce(error_code, outcome, 'pending'), count(*) FROM run_items "
            "WHERE run_id = %s GROUP BY 1",
            run.id,
        )
    )
    assert outcomes == {"succeeded": counts.succeeded, "CANCELLED": counts.failed}
    assert context["cancelledCount"] == counts.failed
    # Promptly: far sooner than the run would have taken to finish.
    took = query_one(
        stack.database_url,
        "SELECT extract(epoch FROM finished_at - cancel_requested_at) FROM runs WHERE id = %s",
        run.id,
    )[0]
    assert took < 5
