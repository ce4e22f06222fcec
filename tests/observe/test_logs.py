"""One log format: JSON lines of the gateway, server and worker parsed and
their fields checked, tied together by the request id of one HTTP call."""

from __future__ import annotations

import io
import json
import logging
import uuid

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tenantpilot.runs.v1 import runs_pb2

from runsvc_observe.logging import configure_logging, log_context
from tests.support.db import query_one
from tests.support.runs import get, start, wait_terminal
from tests.support.seeding import seed_tenant

JSON = {"RUNSVC_LOG_FORMAT": "json"}


def json_lines(output: str) -> list[dict]:
    """Every line a process wrote through its loggers, parsed; a line that is
    neither JSON nor one of the processes' own ready announcements fails."""
    parsed = []
    for line in output.splitlines():
        if line.startswith("{"):
            parsed.append(json.loads(line))
        else:
            assert "listening on" in line or "metrics on" in line or not line.strip(), line
    return parsed


def lines_with(lines: list[dict], **fields: object) -> list[dict]:
    return [line for line in lines if all(line.get(k) == v for k, v in fields.items())]


def test_one_request_id_ties_gateway_server_and_worker_lines(make_stack, make_gateway):
    stack = make_stack(own_database=True, **JSON)
    stack.start_server()
    worker = stack.start_worker()
    gateway = make_gateway(stack.target, stack=stack, env=JSON)
    tenant = seed_tenant(stack.database_url, policies=2)
    request_id = f"req-{uuid.uuid4().hex}"

    with gateway.client() as http:
        created = http.post(
            f"/admin/t/{tenant.external_id}/runs/snapshot_capture",
            json={"itemIds": [*tenant.policy_ids, "no-such-policy"]},
            headers={"X-Request-Id": request_id},
        )
    assert created.status_code == 201, created.text
    assert created.headers["x-request-id"] == request_id  # echoed
    run = created.json()["run"]
    record = wait_terminal(stack.stub(), runs_pb2.RunRecord(
        id=run["id"], tenant_external_id=tenant.external_id, type="snapshot_capture"))  # fmt: skip
    assert record.status == runs_pb2.RUN_STATUS_PARTIAL
    # Stored with the run.
    assert query_one(stack.database_url, "SELECT request_id FROM runs WHERE id = %s",
                     run["id"])[0] == request_id  # fmt: skip

    the_run = {"run_id": run["id"], "tenant": tenant.external_id, "run_type": "snapshot_capture"}
    # The gateway's access line.
    gateway_lines = json_lines(gateway.process.output())
    (access,) = lines_with(gateway_lines, request_id=request_id)
    assert access["logger"] == "runsvc_gateway.access" and access["status"] == 201
    assert access["route"] == "/admin/t/{tenantExternalId}/runs/{runType}"
    assert lines_with(gateway_lines, logger="uvicorn.error")  # uvicorn's own, same format
    # The server's one line for the created run.
    server_lines = json_lines(stack.server.output())
    (started,) = lines_with(server_lines, logger="runsvc.runs", request_id=request_id)
    assert started | the_run == started and started["reused"] is False
    assert started["message"] == f"run {run['id']} created"
    # The worker's lines for the run, the finished one with counts and code.
    worker_lines = json_lines(worker.wait_for(r"\d/3 succeeded").string)
    for_run = lines_with(worker_lines, **the_run, request_id=request_id)
    assert any("claimed" in line["message"] for line in for_run)
    (finished,) = [line for line in for_run if line["logger"] == "runsvc.runs"]
    assert finished["status"] == "partial"
    assert (finished["total"], finished["succeeded"], finished["failed"]) == (3, 2, 1)
    assert finished["error_code"] == "ITEMS_FAILED"
    # Dramatiq's own lines, from its main and worker processes, in the format too.
    assert lines_with(worker_lines, logger="dramatiq.MainProcess")
    assert lines_with(worker_lines, logger="dramatiq.WorkerProcess(0)")
    for line in gateway_lines + server_lines + worker_lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert line["time"].endswith("Z")


def test_a_reused_run_logs_its_own_line_and_ids_are_made_when_missing(make_stack, make_gateway):
    stack = make_stack(own_database=True, **JSON)
    stack.start_server()
    gateway = make_gateway(stack.target, stack=stack, env=JSON)
    tenant = seed_tenant(stack.database_url, policies=1)
    with gateway.client() as http:
        first = http.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
        again = http.post(
            f"/admin/t/{tenant.external_id}/runs/snapshot_capture",
            headers={"X-Request-Id": "not a sane id\u00e9".encode("latin-1")},
        )
    assert (first.status_code, again.status_code) == (201, 200)
    made = first.headers["x-request-id"]
    replaced = again.headers["x-request-id"]
    assert made and replaced and made != replaced and " " not in replaced
    server_lines = json_lines(stack.server.output())
    (created,) = lines_with(server_lines, logger="runsvc.runs", request_id=made)
    (reused,) = lines_with(server_lines, logger="runsvc.runs", request_id=replaced)
    assert created["reused"] is False and reused["reused"] is True
    assert created["run_id"] == reused["run_id"]


def test_grpc_callers_get_the_request_id_back(make_stack):
    stack = make_stack(own_database=True)
    stack.start_server()
    tenant = seed_tenant(stack.database_url, policies=1)
    stub = stack.stub()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    call = stub.GetRun.with_call(
        runs_pb2.GetRunRequest(
            tenant_external_id=tenant.external_id, run_type=run.type, run_id=run.id
        ),
        metadata=(("x-request-id", "caller-chosen-1"),),
        timeout=10,
    )
    assert ("x-request-id", "caller-chosen-1") in call[1].trailing_metadata()
    made = stub.GetRun.with_call(
        runs_pb2.GetRunRequest(
            tenant_external_id=tenant.external_id, run_type=run.type, run_id=run.id
        ),
        timeout=10,
    )[1]
    assert dict(made.trailing_metadata())["x-request-id"]
    # A refused call carries it too, and its log line has it.
    try:
        stack.stub(token=None).GetRun(
            runs_pb2.GetRunRequest(tenant_external_id="x", run_type=run.type, run_id=run.id),
            metadata=(("x-request-id", "refused-call-7"),),
            timeout=10,
        )
    except grpc.RpcError as refused:
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
        assert dict(refused.trailing_metadata())["x-request-id"] == "refused-call-7"
    else:
        raise AssertionError("a call without a token was served")
    # An invalid request keeps both its field violations and the request id.
    try:
        stub.GetRun(
            runs_pb2.GetRunRequest(tenant_external_id=tenant.external_id, run_type=run.type),
            metadata=(("x-request-id", "invalid-call-8"),),
            timeout=10,
        )
    except grpc.RpcError as invalid:
        assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(invalid.trailing_metadata())["x-request-id"] == "invalid-call-8"
        (detail,) = rpc_status.from_call(invalid).details
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        assert [v.field for v in bad_request.field_violations] == ["run_id"]
    else:
        raise AssertionError("a GetRun without a run id was served")
    # A stream's trailers carry it as well.
    watch = stub.WatchRun(
        runs_pb2.WatchRunRequest(tenant_external_id=tenant.external_id, run_type=run.type),
        metadata=(("x-request-id", "stream-call-9"),),
        timeout=10,
    )
    try:
        next(watch)
    except grpc.RpcError as refused_stream:
        assert refused_stream.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(refused_stream.trailing_metadata())["x-request-id"] == "stream-call-9"
    else:
        raise AssertionError("a WatchRun without a run id was served")
    # And a stream served to its end: the cancelled run's one terminal state.
    cancelled = stub.CancelRun(
        runs_pb2.CancelRunRequest(
            tenant_external_id=tenant.external_id, run_type=run.type, run_id=run.id
        ),
        timeout=10,
    ).run
    assert cancelled.status == runs_pb2.RUN_STATUS_FAILED
    served = stub.WatchRun(
        runs_pb2.WatchRunRequest(
            tenant_external_id=tenant.external_id, run_type=run.type, run_id=run.id
        ),
        metadata=(("x-request-id", "stream-call-10"),),
        timeout=10,
    )
    assert [m.run.status for m in served] == [runs_pb2.RUN_STATUS_FAILED]
    assert served.code() == grpc.StatusCode.OK
    assert dict(served.trailing_metadata())["x-request-id"] == "stream-call-10"
    assert get(stub, run).id == run.id
    refusals = [line for line in stack.server.output().splitlines() if "refused-call-7" in line]
    assert refusals and "refused /tenantpilot.runs.v1.RunService/GetRun" in refusals[0]


def test_text_format_is_the_default_and_secrets_stay_masked():
    out = io.StringIO()
    configure_logging(None, "INFO", stream=out)
    try:
        log = logging.getLogger("some.library")
        with log_context(run_id="r-1", tenant="contoso", request_id="q-1"):
            log.info("connecting to postgresql://admin:hunter2@db/x with Bearer abc.def")
        try:
            raise RuntimeError("password=hunter2 failed")
        except RuntimeError:
            log.exception("boom")
        configure_logging("json", "INFO", stream=out)
        with log_context(run_type="restore_execute"):
            log.warning("token rsvc_0123456789abcdef_SECRETSECRET", extra={"attempt": 2})
    finally:
        configure_logging("text", "WARNING")  # pytest's own handlers come back per test
    text, _, json_part = out.getvalue().partition("\n{")
    first = text.splitlines()[0]
    assert " INFO some.library: connecting to postgresql://***@db/x with Bearer ***" in first
    assert first.endswith("request_id=q-1 run_id=r-1 tenant=contoso")
    assert "hunter2" not in out.getvalue() and "SECRETSECRET" not in out.getvalue()
    assert "RuntimeError: password=***" in text
    line = json.loads("{" + json_part)
    assert line["level"] == "WARNING" and line["logger"] == "some.library"
    assert line["run_type"] == "restore_execute" and line["attempt"] == 2
    assert line["message"] == "token rsvc_***"
