"""Retention (SPEC §10): finished runs older than RUNSVC_RETENTION_DAYS are
deleted with their items and restore rows, in small batches, by a loop in
every worker; audit events have their own, longer retention. Nothing else
is touched."""

from __future__ import annotations

import uuid

from psycopg_pool import ConnectionPool

from runsvc.worker.maintenance import Maintenance, Retention
from tests.support.db import query_all, query_one
from tests.support.seeding import seed_tenant
from tests.support.waiting import wait_until


def stage_run(database_url: str, tenant: str, *, status: str, age_days: float) -> str:
    """A run `age_days` old (finished then, when terminal) with 5 items, a
    restore preview row and a restore result row."""
    finished = status in ("succeeded", "partial", "failed")
    run_id = query_one(
        database_url,
        "INSERT INTO runs (tenant_external_id, run_type, target_object_id, status, total, "
        "succeeded, items_resolved, created_at, started_at, finished_at, lease_owner, "
        "safe_error, dispatch_due_at) "
        "VALUES (%s, 'restore_preview', %s, %s, 5, %s, true, now() - %s * interval '1 day', "
        "now() - %s * interval '1 day', "
        "CASE WHEN %s THEN now() - %s * interval '1 day' END, "
        "CASE WHEN %s = 'running' THEN 'someone' END, "
        "CASE WHEN %s IN ('partial', 'failed') THEN '{\"code\": \"X\"}'::jsonb END, now()) "
        "RETURNING id::text",
        tenant,
        uuid.uuid4().hex,
        status,
        5 if finished else 0,
        age_days,
        age_days,
        finished,
        age_days,
        status,
        status,
    )[0]
    query_one(
        database_url,
        "INSERT INTO run_items (run_id, position, item_id, outcome, finished_at) "
        "SELECT %s, g, 'item-' || g, CASE WHEN %s THEN 'succeeded' END, "
        "CASE WHEN %s THEN now() END FROM generate_series(0, 4) g RETURNING 1",
        run_id,
        finished,
        finished,
    )
    backup_item = query_one(
        database_url,
        "SELECT bi.id FROM backup_items bi JOIN tenants t ON t.id = bi.tenant_id "
        "WHERE t.external_id = %s LIMIT 1",
        tenant,
    )[0]
    query_one(
        database_url,
        "WITH p AS (INSERT INTO restore_previews (run_id, backup_item_id, policy_id, action) "
        "VALUES (%s, %s, 'pol-00000', 'unchanged') RETURNING 1) "
        "INSERT INTO restore_results (run_id, backup_item_id, policy_id, outcome) "
        "VALUES (%s, %s, 'pol-00000', 'unchanged') RETURNING 1",
        run_id,
        backup_item,
        run_id,
        backup_item,
    )
    return run_id


def stage_audit(database_url: str, tenant: str, age_days: float) -> int:
    return query_one(
        database_url,
        "INSERT INTO audit_events (occurred_at, action, token_name, tenant_external_id, reused) "
        "VALUES (now() - %s * interval '1 day', 'run.start', 'test', %s, false) RETURNING id",
        age_days,
        tenant,
    )[0]


def backed_up_tenant(database_url: str):
    tenant = seed_tenant(database_url, policies=1)
    query_one(
        database_url,
        "WITH s AS (INSERT INTO policy_snapshots (tenant_id, policy_id, policy_type, "
        "display_name, payload, payload_hash) SELECT t.id, 'pol-00000', 'x', 'x', '{}', 'h' "
        "FROM tenants t WHERE t.external_id = %s RETURNING id, tenant_id) "
        "INSERT INTO backup_items (tenant_id, backup_set_id, policy_id, snapshot_id) "
        "SELECT tenant_id, 'bs-main', 'pol-00000', id FROM s RETURNING 1",
        tenant.external_id,
    )
    return tenant


def rows_of(database_url: str, run_ids: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """run id -> (run rows, items, previews, results)"""
    found = {}
    for run_id in run_ids:
        found[run_id] = query_one(
            database_url,
            "SELECT (SELECT count(*) FROM runs WHERE id = %s), "
            "(SELECT count(*) FROM run_items WHERE run_id = %s), "
            "(SELECT count(*) FROM restore_previews WHERE run_id = %s), "
            "(SELECT count(*) FROM restore_results WHERE run_id = %s)",
            run_id,
            run_id,
            run_id,
            run_id,
        )
    return found


def test_retention_deletes_what_is_old_and_nothing_else(make_stack):
    stack = make_stack(own_database=True)
    url = stack.database_url
    tenant = backed_up_tenant(url).external_id
    old = [stage_run(url, tenant, status=s, age_days=31) for s in ("succeeded", "failed")]
    old += [stage_run(url, tenant, status="partial", age_days=45) for _ in range(2)]
    kept = [
        stage_run(url, tenant, status="succeeded", age_days=29),  # not old enough
        stage_run(url, tenant, status="running", age_days=60),  # not finished
        stage_run(url, tenant, status="queued", age_days=60),
    ]
    old_audit = stage_audit(url, tenant, 400)
    kept_audit = [stage_audit(url, tenant, 31), stage_audit(url, tenant, 364)]

    # In small batches: 3 rows a statement for 20 items, 4 runs, ...
    with ConnectionPool(url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        deleted = Maintenance(pool, Retention(30, 365), interval=3600, batch=3).run_once()
    assert deleted["run_delete_expired"] == 4
    assert deleted["run_items_delete_expired"] == 20
    assert deleted["audit_delete_expired"] == 1

    assert rows_of(url, old) == {run_id: (0, 0, 0, 0) for run_id in old}
    assert rows_of(url, kept) == {run_id: (1, 5, 1, 1) for run_id in kept}
    audit_ids = {i for (i,) in query_all(url, "SELECT id FROM audit_events")}
    assert old_audit not in audit_ids and set(kept_audit) <= audit_ids


def test_every_worker_runs_the_retention_loop(make_stack):
    stack = make_stack(
        own_database=True,
        RUNSVC_RETENTION_DAYS="7",
        RUNSVC_AUDIT_RETENTION_DAYS="30",
        RUNSVC_MAINTENANCE_INTERVAL_SECONDS="0.5",
    )
    url = stack.database_url
    tenant = backed_up_tenant(url).external_id
    old = stage_run(url, tenant, status="succeeded", age_days=8)
    recent = stage_run(url, tenant, status="succeeded", age_days=6)
    old_audit, recent_audit = stage_audit(url, tenant, 31), stage_audit(url, tenant, 8)
    stack.start_worker()

    wait_until(lambda: rows_of(url, [old])[old] == (0, 0, 0, 0), timeout=30)
    wait_until(
        lambda: (
            query_one(url, "SELECT count(*) FROM audit_events WHERE id = %s", old_audit)[0] == 0
        ),
        timeout=30,
    )
    assert rows_of(url, [recent])[recent] == (1, 5, 1, 1)
    assert query_one(url, "SELECT count(*) FROM audit_events WHERE id = %s", recent_audit)[0] == 1
