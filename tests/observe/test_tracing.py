"""Traces: one HTTP POST yields one trace from the gateway's request span
through the gRPC call to the worker's execution and its batches (the SDK's
in-memory exporter); without OTEL_* settings tracing stays off."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from runsvc_observe.tracing import exporter_names
from tests.conftest import PROJECT_ROOT
from tests.support.database import fresh_database
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.seeding import seed_tenant


def test_one_http_post_yields_one_trace_reaching_the_worker_spans(admin_database_url):
    with fresh_database(admin_database_url) as url:
        done = subprocess.run(
            [sys.executable, "-m", "tests.observe.trace_scenario", url],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=PROJECT_ROOT,
        )
    assert done.returncode == 0, done.stderr[-4000:]
    spans = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_id = {span["span_id"]: span for span in spans}

    (request,) = [s for s in spans if s["kind"] == "SERVER" and s["name"].startswith("POST")]
    assert request["parent_id"] is None  # the trace starts at the HTTP request
    (start_call,) = [
        s for s in spans
        if s["kind"] == "SERVER" and s["name"] == "/tenantpilot.runs.v1.RunService/StartRun"
    ]  # fmt: skip
    client_call = by_id[start_call["parent_id"]]  # the gateway's gRPC client span
    assert client_call["kind"] == "CLIENT"
    assert by_id[client_call["parent_id"]] is request

    (execution,) = [s for s in spans if s["name"] == "run.execute"]
    assert execution["parent_id"] == start_call["span_id"]  # via the run row
    batches = [s for s in spans if s["name"] == "run.batch"]
    assert len(batches) == 3  # 5 items, 2 per batch
    assert all(b["parent_id"] == execution["span_id"] for b in batches)
    assert {s["trace_id"] for s in spans} == {request["trace_id"]}
    assert execution["attributes"]["runsvc.run_type"] == "snapshot_capture"


def test_tracing_is_off_unless_otel_variables_name_an_exporter():
    assert exporter_names({}) == []
    assert exporter_names({"OTEL_SERVICE_NAME": "x"}) == []
    assert exporter_names({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert exporter_names({"OTEL_TRACES_EXPORTER": "otlp,console"}) == ["otlp", "console"]
    assert exporter_names({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == ["otlp"]
    assert (
        exporter_names(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
        )
        == []
    )


def test_processes_export_one_trace_over_otlp_when_otel_variables_say_so(make_stack, make_gateway):
    """The real processes, configured only by the standard variables, export
    over OTLP/HTTP to a collector stand-in: one trace across all three."""
    receiver = OtlpReceiver()
    try:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        stack = make_stack(own_database=True, **otel)
        stack.start_server()
        stack.start_worker()
        gateway = make_gateway(stack.target, stack=stack, env=otel)
        tenant = seed_tenant(stack.database_url, policies=3)
        with gateway.client() as http:
            created = http.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
        assert created.status_code == 201, created.text
        run_id = created.json()["run"]["id"]

        def worker_spans() -> list:
            return [s for s in receiver.received() if s.name == "run.batch"]

        deadline = time.monotonic() + 60
        while not worker_spans():
            assert time.monotonic() < deadline, receiver.received()
            time.sleep(0.1)
        trace_id = worker_spans()[0].trace_id
        in_trace = [s for s in receiver.received() if s.trace_id == trace_id]
        assert {s.service for s in in_trace} == {"runsvc-gateway", "runsvc-server",
                                                 "runsvc-worker"}  # fmt: skip
        (root,) = [s for s in in_trace if not s.parent_id]
        assert root.service == "runsvc-gateway" and root.name.startswith("POST")
        assert run_id  # the run's id stays out of span names (bounded names)
        assert all(run_id not in s.name for s in in_trace)
    finally:
        receiver.close()
