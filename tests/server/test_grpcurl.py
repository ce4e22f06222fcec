"""The server as an operator meets it: grpcurl with no proto files, through
reflection and the standard health service."""

from __future__ import annotations

import json

from tests.support.grpcurl import SERVICE, grpcurl


def test_list_shows_run_service_health_and_reflection(stack):
    result = grpcurl(stack.target, "list")
    assert result.returncode == 0, result.stderr
    services = result.stdout.split()
    assert SERVICE in services
    assert "grpc.health.v1.Health" in services
    assert any(s.startswith("grpc.reflection.") for s in services)


def test_describe_shows_the_rpcs_and_messages(stack):
    service = grpcurl(stack.target, "describe", SERVICE)
    assert service.returncode == 0, service.stderr
    for rpc in (
        "rpc StartRun",
        "rpc GetRun",
        "rpc WatchRun",
        "rpc ListRuns",
        "rpc ListRunItems",
        "rpc CancelRun",
        "rpc RetryRun",
    ):
        assert rpc in service.stdout
    assert "returns ( stream .tenantpilot.runs.v1.WatchRunResponse )" in service.stdout
    listing = grpcurl(stack.target, "describe", "tenantpilot.runs.v1.ListRunsRequest")
    assert listing.returncode == 0, listing.stderr
    for field in ("run_types", "statuses", "created_after", "page_size", "page_token"):
        assert field in listing.stdout

    record = grpcurl(stack.target, "describe", "tenantpilot.runs.v1.RunRecord")
    assert record.returncode == 0, record.stderr
    for field in (
        "tenant_external_id",
        "started_at",
        "safe_error",
        "counts",
        "version",
        "retry_of_run_id",
        "cancel_requested_at",
    ):
        assert field in record.stdout


def test_health_check_is_serving_without_credentials(stack):
    for service in ("", SERVICE):
        data = {"service": service} if service else {}
        result = grpcurl(stack.target, "grpc.health.v1.Health/Check", data=data)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"status": "SERVING"}


def test_start_and_get_with_grpcurl(stack, tenant):
    started = grpcurl(
        stack.target,
        f"{SERVICE}/StartRun",
        data={
            "tenant_external_id": tenant.external_id,
            "run_type": "snapshot_capture",
            "options": {"target_object_id": "grpcurl", "item_ids": {"values": ["pol-00000"]}},
        },
        token=stack.token,
    )
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)["run"]
    assert run["status"] in ("RUN_STATUS_QUEUED", "RUN_STATUS_RUNNING")
    assert run["counts"] == {"total": 1}

    got = grpcurl(
        stack.target,
        f"{SERVICE}/GetRun",
        data={
            "tenant_external_id": tenant.external_id,
            "run_type": "snapshot_capture",
            "run_id": run["id"],
        },
        token=stack.token,
    )
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["run"]["id"] == run["id"]

    missing = grpcurl(
        stack.target,
        f"{SERVICE}/GetRun",
        data={"tenant_external_id": "other", "run_type": "snapshot_capture", "run_id": run["id"]},
        token=stack.token,
    )
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr


def test_run_service_needs_a_token_with_grpcurl(stack, tenant):
    request = {
        "tenant_external_id": tenant.external_id,
        "run_type": "snapshot_capture",
        "run_id": "00000000-0000-0000-0000-000000000000",
    }
    for token in (None, "rsvc_0000000000000000_" + "x" * 43, "not-a-token"):
        refused = grpcurl(stack.target, f"{SERVICE}/GetRun", data=request, token=token)
        assert refused.returncode != 0
        assert "Unauthenticated" in refused.stderr, refused.stderr
    found = grpcurl(stack.target, f"{SERVICE}/GetRun", data=request, token=stack.token)
    assert "NotFound" in found.stderr, found.stderr


def test_list_and_cancel_with_grpcurl(idle_stack, tenant):
    address = {"tenant_external_id": tenant.external_id, "run_type": "snapshot_capture"}
    started = grpcurl(
        idle_stack.target, f"{SERVICE}/StartRun", data=address, token=idle_stack.token
    )
    run = json.loads(started.stdout)["run"]
    listed = grpcurl(
        idle_stack.target,
        f"{SERVICE}/ListRuns",
        data={"tenant_external_id": tenant.external_id, "status": ["RUN_STATUS_QUEUED"]},
        token=idle_stack.token,
    )
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)["runs"]] == [run["id"]]
    cancelled = grpcurl(
        idle_stack.target,
        f"{SERVICE}/CancelRun",
        data={**address, "run_id": run["id"]},
        token=idle_stack.token,
    )
    assert cancelled.returncode == 0, cancelled.stderr
    record = json.loads(cancelled.stdout)["run"]
    assert record["status"] == "RUN_STATUS_FAILED", cancelled.stdout
    assert record["safe_error"]["code"] == "CANCELLED", cancelled.stdout
