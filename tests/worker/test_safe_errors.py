"""SPEC §3 safeError: a handler that raises with a secret in its text (a
password in a connection string, a bearer token) ends the item or the run
with a code and small context, never the text; logs are redacted too."""

from __future__ import annotations

import json

from google.protobuf.json_format import MessageToJson
from tenantpilot.runs.v1 import runs_pb2

from tests.support.db import query_all
from tests.support.runs import start, wait_terminal
from tests.support.scripted_source import SECRET_TEXT
from tests.support.seeding import seed_tenant

SCRIPTED = "tests.support.scripted_source:create"
# Every piece of SECRET_TEXT a leak would show.
SECRETS = ["hunter2", "tok_SECRET", "admin:", "postgresql://", "connect failed", "db.internal"]
LEAKS = [*SECRETS, "RuntimeError", "Traceback"]


def assert_no_leak(text: str) -> None:
    for secret in LEAKS:
        assert secret not in text, f"{secret!r} leaked: {text[:500]}"


def stored_text(database_url: str, run_id: str) -> str:
    """Everything the database holds about the run, as text."""
    rows = query_all(database_url, "SELECT to_jsonb(r)::text FROM runs r WHERE id = %s", run_id)
    rows += query_all(
        database_url, "SELECT to_jsonb(i)::text FROM run_items i WHERE run_id = %s", run_id
    )
    return "\n".join(row[0] for row in rows)


def test_items_that_raise_secrets_fail_with_a_safe_error(make_stack):
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_CRASH="pol-00001,pol-00003",
    )
    stack.start_server()
    worker = stack.start_worker()
    tenant = seed_tenant(stack.database_url, policies=4)
    stub = stack.stub()
    run = wait_terminal(stub, start(stub, tenant.external_id, "snapshot_capture").run)

    assert run.status == runs_pb2.RUN_STATUS_PARTIAL
    assert run.safe_error.code == "ITEMS_FAILED"
    context = json.loads(MessageToJson(run.safe_error.context))
    assert context["errorCodes"] == {"INTERNAL_ERROR": 2}
    assert context["failedItemIds"] == ["pol-00001", "pol-00003"]
    assert_no_leak(MessageToJson(run))
    assert_no_leak(stored_text(stack.database_url, run.id))

    log = worker.output()
    assert "source call failed" in log  # it was logged ...
    for secret in ("hunter2", "tok_SECRET"):  # ... redacted
        assert secret not in log
    assert "postgresql://***@db.internal" in log and "Bearer ***" in log


def test_a_run_level_failure_with_a_secret_ends_the_run_safely(make_stack):
    # A database of its own: the run is given back after each failed attempt,
    # and another stack's reaper (with a well-behaved source) would adopt it.
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE=SCRIPTED,
        RUNSVC_TEST_SOURCE_CRASH_LIST="1",
        RUNSVC_MAX_ATTEMPTS="2",
    )
    stack.start_server()
    worker = stack.start_worker()
    tenant = seed_tenant(stack.database_url, policies=2)
    stub = stack.stub()
    run = wait_terminal(stub, start(stub, tenant.external_id, "snapshot_capture").run, timeout=90)

    assert run.status == runs_pb2.RUN_STATUS_FAILED
    assert run.safe_error.code == "RUN_ATTEMPTS_EXHAUSTED"
    assert_no_leak(MessageToJson(run))
    assert_no_leak(stored_text(stack.database_url, run.id))
    log = worker.output()
    assert "interrupted" in log
    for secret in ("hunter2", "tok_SECRET"):
        assert secret not in log
    assert stack.server.output().count("hunter2") == 0


def test_secret_text_really_holds_the_secrets():
    for secret in SECRETS:
        assert secret in SECRET_TEXT
