"""Figures for runsvc on this machine, measured in one run so that ratios
hold on a noisy machine. Prints, does not assert: targets live here, not in
timed unit tests.

- StartRun latency (new run, reused run) and concurrent StartRun throughput
- item throughput of one run with batched progress writes vs. one write per item
- server memory per open WatchRun stream, and fan-out time of one change to all

    make bench        # RUNSVC_TEST_DATABASE_URL or an embedded Postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tests.support.auth import BearerToken, new_token  # noqa: E402
from tests.support.database import admin_url, fresh_database  # noqa: E402
from tests.support.processes import ServiceProcess, start_server, start_worker  # noqa: E402
from tests.support.runs import start, wait_terminal  # noqa: E402
from tests.support.seeding import seed_tenant  # noqa: E402


def service_env(database_url: str, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "RUNSVC_DATABASE_URL": database_url,
        "RUNSVC_BROKER_URL": database_url,
        "RUNSVC_QUEUE": f"bench-{uuid.uuid4().hex[:10]}",
        "RUNSVC_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(PROJECT_ROOT),
        **overrides,
    }


@dataclass
class Server:
    process: ServiceProcess
    target: str
    stub: runs_pb2_grpc.RunServiceStub


class Bench:
    """Processes started for the benchmark, all stopped at the end."""

    def __init__(self, database_url: str, log_dir: Path, stack: ExitStack):
        self.database_url = database_url
        self.log_dir = log_dir
        self._stack = stack
        # Every RunService call carries a token (the server checks it, cached).
        self.token = new_token(database_url, name="bench")

    def _keep(self, process: ServiceProcess) -> ServiceProcess:
        self._stack.callback(process.stop)
        return process

    def server(self, env: dict[str, str]) -> Server:
        process, target = start_server(env, self.log_dir)
        self._keep(process)
        channel = grpc.insecure_channel(target)
        self._stack.callback(channel.close)
        authed = grpc.intercept_channel(channel, BearerToken(self.token))
        return Server(process, target, runs_pb2_grpc.RunServiceStub(authed))

    def worker(self, env: dict[str, str], threads: int = 4) -> None:
        self._keep(start_worker(env, self.log_dir, threads=threads))


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(call: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def report(name: str, samples_ms: list[float]) -> None:
    print(
        f"{name:<44} p50 {statistics.median(samples_ms):7.2f} ms"
        f"   p95 {percentile(samples_ms, 0.95):7.2f} ms   n={len(samples_ms)}"
    )


def bench_start_run(bench: Bench, n: int) -> None:
    # No worker reads this queue: runs stay queued, so reuse can be measured.
    env = service_env(bench.database_url, RUNSVC_REDISPATCH_SECONDS="86400")
    stub = bench.server(env).stub
    tenant = seed_tenant(bench.database_url, policies=1, prefix="bench")
    start(stub, tenant.external_id, "snapshot_capture", payload_hash="warm-up")
    report(
        "StartRun, new run",
        timed(
            lambda: start(
                stub, tenant.external_id, "snapshot_capture", payload_hash=uuid.uuid4().hex
            ),
            n,
        ),
    )
    report(
        "StartRun, reused active run",
        timed(
            lambda: start(stub, tenant.external_id, "snapshot_capture", payload_hash="warm-up"), n
        ),
    )
    threads = 16
    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(
            pool.map(
                lambda _: start(
                    stub, tenant.external_id, "snapshot_capture", payload_hash=uuid.uuid4().hex
                ),
                range(n),
            )
        )
    elapsed = time.perf_counter() - began
    print(f"{'StartRun, new runs, ' + str(threads) + ' callers':<44} {n / elapsed:8.0f} runs/s")


def run_items(bench: Bench, policies: int, batch_size: int) -> tuple[float, int]:
    env = service_env(bench.database_url, RUNSVC_BATCH_SIZE=str(batch_size))
    stub = bench.server(env).stub
    bench.worker(env, threads=1)
    tenant = seed_tenant(bench.database_url, policies=policies, prefix="bench")
    began = time.perf_counter()
    run = start(stub, tenant.external_id, "snapshot_capture").run
    final = wait_terminal(stub, run, timeout=600)
    elapsed = time.perf_counter() - began
    assert final.counts.succeeded == policies, final
    return policies / elapsed, final.version


def bench_items(bench: Bench, policies: int) -> None:
    batched, batched_versions = run_items(bench, policies, 100)
    single, single_versions = run_items(bench, policies, 1)
    print(
        f"{'snapshot_capture, progress batch 100':<44} {batched:8.0f} items/s"
        f"   ({batched_versions} versions for {policies} items)"
    )
    print(
        f"{'snapshot_capture, progress batch 1':<44} {single:8.0f} items/s"
        f"   ({single_versions} versions for {policies} items)"
    )
    print(f"{'batched / per-item throughput':<44} {batched / single:8.1f} x")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def hold_watchers(
    target: str,
    run: runs_pb2.RunRecord,
    n: int,
    on_open: Callable[[], None],
    database_url: str,
    token: str,
) -> float:
    """Opens n streams on one run, calls on_open, then times one change to all."""
    channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, n // 100))]
    request = runs_pb2.WatchRunRequest(
        tenant_external_id=run.tenant_external_id, run_type=run.type, run_id=run.id
    )
    calls = [
        runs_pb2_grpc.RunServiceStub(channels[i % len(channels)]).WatchRun(
            request, metadata=(("authorization", f"Bearer {token}"),)
        )
        for i in range(n)
    ]
    try:
        await asyncio.gather(*(call.read() for call in calls))  # the current state
        on_open()
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            began = time.perf_counter()
            await conn.execute("UPDATE runs SET version = version + 1 WHERE id = %s", (run.id,))
            await asyncio.gather(*(call.read() for call in calls))
            return time.perf_counter() - began
    finally:
        for call in calls:
            call.cancel()
        for channel in channels:
            await channel.close()


def bench_watchers(bench: Bench, n: int) -> None:
    env = service_env(bench.database_url, RUNSVC_REDISPATCH_SECONDS="86400")
    server = bench.server(env)
    tenant = seed_tenant(bench.database_url, policies=1, prefix="bench")
    run = start(server.stub, tenant.external_id, "snapshot_capture").run
    time.sleep(1)
    before = rss_kib(server.process.pid)
    opened: dict[str, int] = {}

    def measure() -> None:
        time.sleep(1)
        opened["rss"] = rss_kib(server.process.pid)
        with psycopg.connect(bench.database_url) as conn:
            opened["listeners"] = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (f"runsvc-watch-hub:{server.process.pid}",),
            ).fetchone()[0]

    fan_out = asyncio.run(
        hold_watchers(server.target, run, n, measure, bench.database_url, bench.token)
    )
    per_watcher = (opened["rss"] - before) / n
    print(
        f"{'server RSS per open WatchRun':<44} {per_watcher:8.1f} KiB"
        f"   ({n} streams, {before // 1024} -> {opened['rss'] // 1024} MiB)"
    )
    print(f"{'LISTEN connections for those streams':<44} {opened['listeners']:8d}")
    print(f"{'one change reaches all ' + str(n) + ' watchers':<44} {fan_out * 1000:8.0f} ms")


@contextmanager
def bench_database() -> Iterator[str]:
    with admin_url() as admin, fresh_database(admin, prefix="runsvc_bench") as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=500, help="StartRun calls per figure")
    parser.add_argument("--items", type=int, default=2000, help="policies in the run")
    parser.add_argument("--watchers", type=int, default=2000, help="open WatchRun streams")
    args = parser.parse_args()
    with bench_database() as url, tempfile.TemporaryDirectory() as logs, ExitStack() as stack:
        bench = Bench(url, Path(logs), stack)
        print(f"runsvc benchmark, {os.cpu_count()} cores")
        bench_start_run(bench, args.starts)
        bench_items(bench, args.items)
        bench_watchers(bench, args.watchers)


if __name__ == "__main__":
    main()
