"""Fair scheduling across tenants (SPEC §9): one tenant's backlog never
delays other tenants' runs by more than a batch or two, and no tenant runs
more than RUNSVC_TENANT_MAX_RUNNING runs at once across all workers; the
others wait queued, holding no worker thread, and start as soon as a slot
frees."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from tests.support.db import query_all, query_one
from tests.support.runs import start, wait_terminal
from tests.support.seeding import seed_tenant
from tests.support.waiting import wait_until


def started(database_url: str, run_ids: list[str]) -> dict[str, object]:
    rows = query_all(
        database_url,
        "SELECT id::text, started_at FROM runs"
        " WHERE id = ANY(%s::uuid[]) AND started_at IS NOT NULL",
        run_ids,
    )
    return dict(rows)


def most_at_once(intervals: list[tuple]) -> int:
    """The largest number of intervals (start, end) that overlap."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def test_a_backlog_does_not_delay_other_tenants(make_stack):
    stack = make_stack(own_database=True)
    stack.start_server()
    stub = stack.stub()
    busy = seed_tenant(stack.database_url, policies=3)
    others = [seed_tenant(stack.database_url, policies=1) for _ in range(20)]
    with ThreadPoolExecutor(16) as pool:
        backlog = list(
            pool.map(
                lambda i: start(stub, busy.external_id, "snapshot_capture", target=f"b{i}").run,
                range(500),
            )
        )
    singles = [start(stub, t.external_id, "snapshot_capture").run.id for t in others]

    stack.start_worker(threads=8)
    (ready,) = query_one(stack.database_url, "SELECT now()")

    def all_started() -> dict[str, object] | None:
        seen = started(stack.database_url, singles)
        return seen if len(seen) == len(singles) else None

    seen = wait_until(all_started, what="not every other tenant's run started")
    latest = max(seen.values())
    assert latest - ready <= timedelta(seconds=2), latest - ready
    # Meanwhile the busy tenant held at most its two slots.
    claimed = query_all(
        stack.database_url,
        "SELECT started_at, coalesce(finished_at, now() + interval '1 day') FROM runs"
        " WHERE tenant_external_id = %s AND started_at IS NOT NULL",
        busy.external_id,
    )
    assert 1 <= most_at_once(claimed) <= 2
    assert len(backlog) == 500


def test_a_tenant_runs_at_most_its_limit_and_waiting_runs_start_when_a_slot_frees(make_stack):
    stack = make_stack(
        own_database=True,
        RUNSVC_TENANT_SOURCE="tests.support.scripted_source:create",
        RUNSVC_TEST_SOURCE_DELAY="0.3",
        RUNSVC_TENANT_MAX_RUNNING="2",
    )
    stack.start_server()
    stub = stack.stub()
    tenant = seed_tenant(stack.database_url, policies=2)
    runs = [
        start(stub, tenant.external_id, "snapshot_capture", target=f"r{i}").run for i in range(12)
    ]
    stack.start_worker(processes=2, threads=4)  # eight threads for twelve runs
    finished = [wait_terminal(stub, run, timeout=120) for run in runs]
    assert all(f.counts.succeeded == f.counts.total == 2 for f in finished)
    intervals = query_all(
        stack.database_url,
        "SELECT started_at, finished_at FROM runs WHERE tenant_external_id = %s",
        tenant.external_id,
    )
    assert most_at_once(intervals) == 2
    # Each run after the first two started right after one of the tenant's
    # runs finished: it waited for a slot, not for a message or the reaper.
    ends = sorted(end for _, end in intervals)
    for start_at, _ in sorted(intervals)[2:]:
        waited = min(start_at - end for end in ends if end <= start_at)
        assert waited < timedelta(seconds=1), waited
