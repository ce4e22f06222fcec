"""Figures for the operators' RPCs, measured in one run beside a bare
baseline (GetRun of one run on the same server: a primary-key read through
the same gRPC, auth and pool), with the ratio. Prints, does not assert.

- ListRuns p50 with 100,000 runs in one tenant (and 50,000 in others): the
  first page, a page deep in the listing, a filtered page, and whole walks
  with the plan Postgres chooses (EXPLAIN ANALYZE)
- CancelRun of a running run: the time to its terminal state, beside the time
  one batch of its progress takes

    python benchmarks/bench_operators.py     # RUNSVC_TEST_DATABASE_URL or embedded Postgres
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import psycopg
from psycopg import sql
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.store.migrate import migrate
from runsvc.store.queries import QUERIES
from runsvc.tokens import create_token

TENANT = "bench-tenant"
RUN_TYPES = ["backup_set_add_policies", "restore_execute", "restore_preview", "snapshot_capture"]


# -- the parts: a fresh database, the server and worker processes -----------


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database on RUNSVC_TEST_DATABASE_URL's server, or an embedded one."""
    with ExitStack() as stack:
        name = f"runsvc_bench_{uuid.uuid4().hex[:8]}"
        admin = os.environ.get("RUNSVC_TEST_DATABASE_URL")
        if admin:
            url = urlsplit(admin)._replace(path=f"/{name}").geturl()
        else:
            from runsvc.dev import start_embedded_postgres

            data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            os.chmod(data, 0o755)  # embedded Postgres runs as its own user under root
            server = start_embedded_postgres(data / "pgdata")
            stack.callback(server.cleanup)
            admin, url = server.get_uri("postgres"), server.get_uri(name)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            migrate(url)
            yield url
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


class Process:
    """`runsvc ...` as a child process in a session of its own."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runsvc.cli", *args],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text(errors="replace"))
            if found:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text(errors="replace")[-3000:])
            time.sleep(0.05)
        raise TimeoutError(f"never printed {pattern!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self._out.close()


class Bearer(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        metadata = [*(details.metadata or ()), self._header]
        return continuation(details._replace(metadata=metadata), request)


def env_for(database_url: str, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "RUNSVC_DATABASE_URL": database_url,
        "RUNSVC_BROKER_URL": database_url,
        "RUNSVC_QUEUE": f"bench-{uuid.uuid4().hex[:10]}",
        "RUNSVC_LOG_LEVEL": "WARNING",
        **overrides,
    }


# -- figures --


def timed(call: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def line(name: str, samples: list[float], baseline: float) -> None:
    p50 = statistics.median(samples)
    p95 = sorted(samples)[int(0.95 * (len(samples) - 1))]
    print(
        f"{name:<52} p50 {p50:8.2f} ms  p95 {p95:8.2f} ms"
        f"  {p50 / baseline:5.1f}x GetRun  n={len(samples)}"
    )


def seed_runs(database_url: str, tenant_runs: int, other_runs: int) -> None:
    """Terminal runs, one a second back from now; 10% failed (which needs a
    safe error), the rest succeeded; types in turn."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            """
            INSERT INTO runs (tenant_external_id, run_type, target_object_id, payload_hash,
                              status, items_resolved, safe_error, created_at, started_at,
                              finished_at, dispatch_due_at)
            SELECT tenant, (%(types)s::text[])[1 + g %% 4], 'bs-' || (g %% 100), 'h' || g,
                   CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'succeeded' END, true,
                   CASE WHEN g %% 10 = 0
                        THEN '{"code": "TARGET_NOT_FOUND", "context": {}}'::jsonb END,
                   at, at, at + interval '1 second', at
            FROM (
                SELECT g, %(tenant)s AS tenant, now() - make_interval(secs => g) AS at
                FROM generate_series(1, %(tenant_runs)s) g
                UNION ALL
                SELECT g, 'other-' || (g %% 50), now() - make_interval(secs => g)
                FROM generate_series(1, %(other_runs)s) g
            ) AS made
            """,
            {
                "types": RUN_TYPES,
                "tenant": TENANT,
                "tenant_runs": tenant_runs,
                "other_runs": other_runs,
            },
        )
        conn.execute("INSERT INTO tenants (external_id) VALUES (%s)", (TENANT,))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE runs")


def explain(database_url: str, **filters: object) -> str:
    params = {
        "tenant": TENANT,
        "run_types": None,
        "statuses": None,
        "target_object_id": None,
        "created_after": None,
        "created_before": None,
        "after_created_at": None,
        "after_id": None,
        "limit": 51,
        **filters,
    }
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + QUERIES["run_list"], params
        ).fetchall()
    return "\n".join(f"    {row}" for (row,) in rows)


def bench_list_runs(database_url: str, stub: runs_pb2_grpc.RunServiceStub, n: int) -> None:
    newest = stub.ListRuns(runs_pb2.ListRunsRequest(tenant_external_id=TENANT, page_size=1))
    sample = newest.runs[0]
    get = runs_pb2.GetRunRequest(tenant_external_id=TENANT, run_type=sample.type, run_id=sample.id)
    calls = {
        "GetRun (the baseline: one run by primary key)": get,
        "ListRuns, first page of 50": runs_pb2.ListRunsRequest(tenant_external_id=TENANT),
        "ListRuns, page of 50 after 50,000 runs": runs_pb2.ListRunsRequest(
            tenant_external_id=TENANT, page_size=50, page_token=_token_after(stub, 50_000)
        ),
        "ListRuns, first 50 failed runs (1 in 10)": runs_pb2.ListRunsRequest(
            tenant_external_id=TENANT, statuses=[runs_pb2.RUN_STATUS_FAILED]
        ),
        "ListRuns, one type and target (1 in 100)": runs_pb2.ListRunsRequest(
            tenant_external_id=TENANT, run_types=["restore_preview"], target_object_id="bs-42"
        ),
    }

    def send(request: object) -> object:
        return (stub.GetRun if isinstance(request, runs_pb2.GetRunRequest) else stub.ListRuns)(
            request
        )

    for _ in range(20):  # warm the pool, the token cache and the plans
        for request in calls.values():
            send(request)
    # Round robin, so that the machine's noise falls on every figure alike.
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, request in calls.items():
            samples[name] += timed(lambda request=request: send(request), 1)
    names = iter(calls)
    baseline = next(names)
    base = statistics.median(samples[baseline])
    print(f"{baseline:<52} p50 {base:8.2f} ms")
    for name in names:
        line(name, samples[name], base)

    walk = runs_pb2.ListRunsRequest(tenant_external_id=TENANT, page_size=1000)
    token, walked = "", 0
    walk_pages: list[float] = []
    while True:
        walk.page_token = token
        began = time.perf_counter()
        page = stub.ListRuns(walk)
        walk_pages.append((time.perf_counter() - began) * 1000)
        walked += len(page.runs)
        token = page.next_page_token
        if not token:
            break
    line(f"ListRuns, each page of 1000 over all {walked:,}", walk_pages, base)
    print("\nEXPLAIN ANALYZE of ListRuns' query, first page (the index, no sort):")
    print(explain(database_url))
    print("EXPLAIN ANALYZE of a page after 50,000 runs (an index range from the position):")
    with psycopg.connect(database_url) as conn:
        at, run_id = conn.execute(
            "SELECT created_at, id FROM runs WHERE tenant_external_id = %s "
            "ORDER BY created_at DESC, id DESC OFFSET 50000 LIMIT 1",
            (TENANT,),
        ).fetchone()
    print(explain(database_url, after_created_at=at, after_id=run_id))


def _token_after(stub: runs_pb2_grpc.RunServiceStub, skip: int) -> str:
    """The page token after `skip` runs, as a caller gets it by paging."""
    request = runs_pb2.ListRunsRequest(tenant_external_id=TENANT, page_size=1000)
    seen = 0
    while seen < skip:
        page = stub.ListRuns(request)
        seen += len(page.runs)
        request.page_token = page.next_page_token
    return request.page_token


def bench_cancel(database_url: str, log_dir: Path, token: str, items: int) -> None:
    """A snapshot_capture over `items` live policies, cancelled once it runs."""
    with psycopg.connect(database_url) as conn:
        (tenant_id,) = conn.execute(
            "INSERT INTO tenants (external_id) VALUES ('cancel-bench') RETURNING id"
        ).fetchone()
        conn.execute(
            "INSERT INTO live_policies (tenant_id, policy_id, policy_type, display_name, payload) "
            "SELECT %s, 'pol-' || g, 't', 'p', jsonb_build_object('n', g) "
            "FROM generate_series(1, %s) g",
            (tenant_id, items),
        )
    env = env_for(database_url)
    with ExitStack() as stack:
        server = Process(["serve", "--grpc-addr", "127.0.0.1:0"], env, log_dir / "cs.log")
        stack.callback(server.stop)
        target = server.wait_for(r"listening on (\S+:\d+)")[1]
        # At INFO for its "worker ready" line.
        worker_env = {**env, "RUNSVC_LOG_LEVEL": "INFO"}
        worker = Process(["worker", "--threads", "1"], worker_env, log_dir / "cw.log")
        stack.callback(worker.stop)
        worker.wait_for(r"worker ready")
        channel = grpc.intercept_channel(grpc.insecure_channel(target), Bearer(token))
        stub = runs_pb2_grpc.RunServiceStub(channel)
        run = stub.StartRun(
            runs_pb2.StartRunRequest(tenant_external_id="cancel-bench", run_type="snapshot_capture")
        ).run
        address = dict(tenant_external_id="cancel-bench", run_type=run.type, run_id=run.id)
        get = runs_pb2.GetRunRequest(**address)
        versions: list[tuple[float, int]] = []  # when each progress batch became visible
        while len(versions) < 6:
            state = stub.GetRun(get).run
            if state.counts.succeeded and (not versions or state.version != versions[-1][1]):
                versions.append((time.perf_counter(), state.version))
            time.sleep(0.005)
        batch = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(versions))
        began = time.perf_counter()
        stub.CancelRun(runs_pb2.CancelRunRequest(**address))
        deadline = time.monotonic() + 120
        while (state := stub.GetRun(get).run).status == runs_pb2.RUN_STATUS_RUNNING:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        took = time.perf_counter() - began
    counts = state.counts
    ended = runs_pb2.RunStatus.Name(state.status)
    code = state.safe_error.code if state.HasField("safe_error") else "-"
    print(
        f"CancelRun -> terminal of a running run: {took * 1000:7.0f} ms"
        f"  (one progress batch: {batch * 1000:.0f} ms, {took / batch:.1f}x)"
        f"  ended {ended} {code}, {counts.succeeded} of {counts.total} items done"
    )
    if code != "CANCELLED":
        print("  the worker did not stop at a batch boundary: it ran the run to its end")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the tenant")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--cancel-items", type=int, default=20_000)
    args = parser.parse_args()
    with fresh_database() as url, tempfile.TemporaryDirectory() as logs, ExitStack() as stack:
        log_dir = Path(logs)
        began = time.monotonic()
        seed_runs(url, args.runs, args.runs // 2)
        print(
            f"seeded {args.runs:,} runs in one tenant and {args.runs // 2:,} in 50 others"
            f" ({time.monotonic() - began:.1f} s)\n"
        )
        token = create_token(url, name="bench", role="operator", tenants=None)
        server = Process(
            ["serve", "--grpc-addr", "127.0.0.1:0"],
            env_for(url, RUNSVC_REDISPATCH_SECONDS="86400"),
            log_dir / "server.log",
        )
        stack.callback(server.stop)
        target = server.wait_for(r"listening on (\S+:\d+)")[1]
        channel = grpc.intercept_channel(grpc.insecure_channel(target), Bearer(token))
        stack.callback(channel.close)
        bench_list_runs(url, runs_pb2_grpc.RunServiceStub(channel), args.samples)
        print()
        bench_cancel(url, log_dir, token, args.cancel_items)
    return 0


if __name__ == "__main__":
    sys.exit(main())
