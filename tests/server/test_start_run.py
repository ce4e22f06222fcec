"""StartRun per SPEC §1: create or reuse, race-safe in the database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
from tenantpilot.runs.v1 import runs_pb2

from tests.support.runs import start, wait_terminal


def count_runs(database_url: str, tenant: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM runs WHERE tenant_external_id = %s", (tenant,)
        ).fetchone()[0]


def test_new_run_is_queued_and_durable(idle_stub, tenant, database_url):
    response = start(idle_stub, tenant.external_id, "snapshot_capture")
    assert response.reused is False
    run = response.run
    assert run.tenant_external_id == tenant.external_id
    assert run.type == "snapshot_capture"
    assert run.status == runs_pb2.RUN_STATUS_QUEUED
    assert run.counts.total == 0 and run.version == 1
    assert run.HasField("created_at") and not run.HasField("finished_at")
    assert not run.HasField("safe_error")
    assert count_runs(database_url, tenant.external_id) == 1


def test_fifty_concurrent_identical_starts_create_exactly_one_run(idle_stub, tenant, database_url):
    # No worker consumes this server's queue, so the run stays active.
    def call(_: int) -> runs_pb2.StartRunResponse:
        return start(
            idle_stub, tenant.external_id, "restore_preview", target="bs-main", payload_hash="h1"
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(call, range(50)))

    created = [r for r in responses if not r.reused]
    assert len(created) == 1
    assert sum(r.reused for r in responses) == 49
    assert {r.run.id for r in responses} == {created[0].run.id}
    assert count_runs(database_url, tenant.external_id) == 1


def test_other_payload_hash_or_target_gives_another_run(idle_stub, tenant):
    first = start(
        idle_stub, tenant.external_id, "restore_preview", target="bs-main", payload_hash="a"
    )
    other_target = start(
        idle_stub, tenant.external_id, "restore_preview", target="bs-other", payload_hash="a"
    )
    other_type = start(
        idle_stub, tenant.external_id, "restore_execute", target="bs-main", payload_hash="a"
    )
    assert not other_target.reused and not other_type.reused
    assert len({first.run.id, other_target.run.id, other_type.run.id}) == 3
    second = start(
        idle_stub, tenant.external_id, "restore_preview", target="bs-main", payload_hash="b"
    )
    assert not first.reused and not second.reused
    assert first.run.id != second.run.id


def test_absent_and_empty_target_share_a_key(idle_stub, tenant):
    first = start(idle_stub, tenant.external_id, "snapshot_capture", payload_hash="same")
    second = start(
        idle_stub, tenant.external_id, "snapshot_capture", target="", payload_hash="same"
    )
    assert second.reused and second.run.id == first.run.id


def test_terminal_run_is_not_reused(stub, tenant):
    first = start(stub, tenant.external_id, "snapshot_capture", target="scope-a")
    finished = wait_terminal(stub, first.run)
    assert finished.status == runs_pb2.RUN_STATUS_SUCCEEDED
    again = start(stub, tenant.external_id, "snapshot_capture", target="scope-a")
    assert again.reused is False
    assert again.run.id != first.run.id
