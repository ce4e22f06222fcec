"""The request path beside bare baselines measured in the same run: StartRun,
GetRun, the gateway's GET and WatchRun fan-out, each next to a grpc.aio
server doing one INSERT or one SELECT per call (psycopg pool of 10, same
Postgres, same client) or to raw LISTEN/NOTIFY. Prints; asserts nothing.

    make bench    # RUNSVC_TEST_DATABASE_URL (an admin URL) or an embedded Postgres

Every load runs in client processes of its own (the same client code for
runsvc and for its baseline), in rounds that take turns with their
baselines (`--rounds`); a ratio is the median of the rounds' ratios, with
their range beside it, so that one slow spell of a noisy machine does not
decide it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import psycopg
from psycopg_pool import AsyncConnectionPool
from rich.console import Console
from rich.table import Table
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.seed import seed
from runsvc.store.scratch import admin_url, fresh_database
from runsvc.tokens import create_token

HERE = Path(__file__).resolve()
TENANT = "bench-tenant"
console = Console(width=200)


# --- the database ----------------------------------------------------------


@contextlib.contextmanager
def bench_database(admin: str) -> Iterator[str]:
    """A fresh, migrated database with the baseline's table."""
    with fresh_database(admin, prefix="runsvc_bench") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE bench_baseline (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                "tenant text NOT NULL, run_type text NOT NULL, "
                "created_at timestamptz NOT NULL DEFAULT now())"
            )
        yield url


# --- processes -------------------------------------------------------------


class Process:
    """A child that prints a ready line; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, cmd: list[str], env: dict[str, str], ready: str, log: Path) -> None:
        self.log = log
        self._file = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._file, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while not (match := re.search(ready, log.read_text(errors="replace"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[:4]} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        self.match = match

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._file.close()


class Processes:
    def __init__(self, database_url: str, log_dir: Path, stack: contextlib.ExitStack) -> None:
        self.database_url = database_url
        self.log_dir = log_dir
        self._stack = stack

    def start(self, name: str, cmd: list[str], ready: str, **env: str) -> Process:
        full_env = {
            **os.environ,
            "RUNSVC_DATABASE_URL": self.database_url,
            "RUNSVC_BROKER_URL": self.database_url,
            # No worker reads this queue: runs stay queued (reuse is measurable).
            "RUNSVC_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
            "RUNSVC_REDISPATCH_SECONDS": "86400",
            "RUNSVC_LOG_LEVEL": "WARNING",
            **env,
        }
        process = Process(cmd, full_env, ready, self.log_dir / f"{name}-{time.monotonic_ns()}.log")
        self._stack.callback(process.stop)
        return process

    def runsvc_server(self, **env: str) -> tuple[Process, str]:
        cmd = [sys.executable, "-m", "runsvc.cli", "serve", "--grpc-addr", "127.0.0.1:0"]
        process = self.start("runsvc", cmd, r"listening on (\S+:\d+)", **env)
        return process, process.match[1]

    def baseline_process(self) -> Process:
        cmd = [sys.executable, str(HERE), "--serve-baseline"]
        return self.start("baseline", cmd, r"baseline listening on (\S+:\d+)")

    def baseline_server(self) -> str:
        return self.baseline_process().match[1]

    def gateway(self, grpc_target: str) -> str:
        cmd = [
            sys.executable,
            "-m",
            "runsvc_gateway",
            "--grpc-target",
            grpc_target,
            "--http-addr",
            "127.0.0.1:0",
        ]
        return self.start("gateway", cmd, r"listening on (http://\S+)").match[1]


# --- the bare baseline server ----------------------------------------------


class BaselineService(runs_pb2_grpc.RunServiceServicer):
    """One INSERT (StartRun) or one SELECT (GetRun) per call on a pool of 10:
    no auth, no validation, no audit, no message. WatchRun: one message at
    once, one more when a NOTIFY on `bench_fanout` arrives (bare fan-out)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self.notified = asyncio.Event()

    async def WatchRun(self, request, context):  # type: ignore[no-untyped-def]
        yield runs_pb2.WatchRunResponse(
            run=runs_pb2.RunRecord(id=request.run_id, status=runs_pb2.RUN_STATUS_QUEUED)
        )
        await self.notified.wait()
        yield runs_pb2.WatchRunResponse(
            run=runs_pb2.RunRecord(id=request.run_id, status=runs_pb2.RUN_STATUS_SUCCEEDED)
        )

    async def StartRun(self, request, context):  # type: ignore[no-untyped-def]
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO bench_baseline (tenant, run_type) VALUES (%s, %s) RETURNING id",
                (request.tenant_external_id, request.run_type),
            )
            (run_id,) = await cur.fetchone()
        return runs_pb2.StartRunResponse(run=runs_pb2.RunRecord(id=str(run_id)))

    async def GetRun(self, request, context):  # type: ignore[no-untyped-def]
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, status, version FROM runs WHERE id = %s", (request.run_id,)
            )
            row = await cur.fetchone()
        return runs_pb2.GetRunResponse(run=runs_pb2.RunRecord(id=str(row[0]), version=row[2]))


async def serve_baseline() -> None:
    pool = AsyncConnectionPool(
        os.environ["RUNSVC_DATABASE_URL"],
        min_size=10,
        max_size=10,
        kwargs={"autocommit": True},
        open=False,
    )
    await pool.open(wait=True)
    # The same pending-call backlog as runsvc's, so a burst of streams waits.
    server = grpc.aio.server(
        options=[
            ("grpc.server.max_pending_requests", 10_000),
            ("grpc.server.max_pending_requests_hard_limit", 20_000),
        ]
    )
    service = BaselineService(pool)
    runs_pb2_grpc.add_RunServiceServicer_to_server(service, server)

    async def listen() -> None:
        async with await psycopg.AsyncConnection.connect(
            os.environ["RUNSVC_DATABASE_URL"], autocommit=True
        ) as conn:
            await conn.execute("LISTEN bench_fanout")
            async for _ in conn.notifies():
                service.notified.set()
                service.notified = asyncio.Event()

    listener = asyncio.create_task(listen())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"baseline listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.cancel()
    await server.stop(1)
    await pool.close()


# --- load clients (each in a process of its own) -----------------------------


@dataclass
class Load:
    calls_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int

    def text(self) -> str:
        return f"{self.calls_per_second:,.0f}/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms"


def summarize(samples: list[float], seconds: float, errors: int) -> dict[str, float]:
    ordered = sorted(samples) or [float("nan")]
    return {
        "calls_per_second": len(samples) / seconds,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
        "errors": errors,
    }


async def run_load(seconds: float, warmup: float, concurrency: int, call) -> dict[str, float]:  # type: ignore[no-untyped-def]
    samples: list[float] = []
    errors = 0
    began = time.perf_counter()
    measure_from, end = began + warmup, began + warmup + seconds

    async def worker() -> None:
        nonlocal errors
        while (now := time.perf_counter()) < end:
            try:
                await call()
            except Exception:
                errors += 1
                continue
            if now >= measure_from:
                samples.append(time.perf_counter() - now)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize(samples, seconds, errors)


async def grpc_load(args: argparse.Namespace) -> dict[str, float]:
    async with grpc.aio.insecure_channel(args.target) as channel:
        stub = runs_pb2_grpc.RunServiceStub(channel)
        metadata = (("authorization", f"Bearer {args.token}"),)

        async def call() -> None:
            if args.method == "get":
                request = runs_pb2.GetRunRequest(
                    tenant_external_id=TENANT, run_type="snapshot_capture", run_id=args.run_id
                )
                await stub.GetRun(request, metadata=metadata, timeout=10)
                return
            key = "reused" if args.method == "start-reused" else uuid.uuid4().hex
            request = runs_pb2.StartRunRequest(
                tenant_external_id=TENANT,
                run_type="snapshot_capture",
                options=runs_pb2.RunStartRequest(payload_hash=key),
            )
            await stub.StartRun(request, metadata=metadata, timeout=10)

        return await run_load(args.seconds, args.warmup, args.concurrency, call)


async def http_load(args: argparse.Namespace) -> dict[str, float]:
    """Keep-alive HTTP/1.1 GETs on `concurrency` connections (a raw client, so
    the client is not what is measured)."""
    url = urlsplit(args.url)
    request = (
        f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {args.token}\r\n\r\n"
    ).encode()
    connections = [
        await asyncio.open_connection(url.hostname, url.port) for _ in range(args.concurrency)
    ]
    free = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)

    async def call() -> None:
        reader, writer = await free.get()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:40])
        finally:
            free.put_nowait((reader, writer))

    try:
        return await run_load(args.seconds, args.warmup, args.concurrency, call)
    finally:
        for _, writer in connections:
            writer.close()


async def watch_load(args: argparse.Namespace) -> dict[str, object]:
    """Opens `streams` WatchRun streams at once, says "ready" once each has
    its first state, then records when each gets the terminal state."""
    channels = [grpc.aio.insecure_channel(args.target) for _ in range(max(1, args.streams // 250))]
    request = runs_pb2.WatchRunRequest(
        tenant_external_id=TENANT, run_type="snapshot_capture", run_id=args.run_id
    )
    metadata = (("authorization", f"Bearer {args.token}"),)
    firsts = terminals = failed_early = 0
    received_at: list[float] = []
    codes: dict[str, int] = {}
    all_open = asyncio.Event()

    def settle() -> None:
        if firsts + failed_early == args.streams:
            all_open.set()

    async def one(i: int) -> None:
        nonlocal firsts, terminals, failed_early
        stub = runs_pb2_grpc.RunServiceStub(channels[i % len(channels)])
        call = stub.WatchRun(request, metadata=metadata, timeout=600)
        code, seen = "OK", 0
        try:
            async for message in call:
                seen += 1
                if seen == 1:
                    firsts += 1
                    settle()
                if message.run.status == runs_pb2.RUN_STATUS_SUCCEEDED:
                    received_at.append(time.monotonic())
                    terminals += 1
        except grpc.aio.AioRpcError as error:
            code = error.code().name
            if os.environ.get("BENCH_DEBUG"):
                print(repr(error.debug_error_string()), seen, file=sys.stderr)
            if seen == 0:
                failed_early += 1
                settle()
        codes[code] = codes.get(code, 0) + 1

    tasks = [asyncio.create_task(one(i)) for i in range(args.streams)]
    await all_open.wait()
    print(json.dumps({"ready": firsts}), flush=True)
    await asyncio.gather(*tasks)
    for channel in channels:
        await channel.close()
    return {"firsts": firsts, "terminals": terminals, "codes": codes, "received_at": received_at}


def client(kind: str, **options: object) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(HERE), "--client", kind]
    for name, value in options.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def measure(kind: str, **options: object) -> Load:
    proc = client(kind, **options)
    out, _ = proc.communicate(timeout=300)
    return Load(**json.loads(out.strip().splitlines()[-1]))


# --- the figures -----------------------------------------------------------


@dataclass
class Row:
    figure: str
    runsvc: str
    baseline: str
    ratio: str
    goal: str


def listen_notify_latency(database_url: str, n: int) -> list[float]:
    """A NOTIFY's commit, from sending it, to its receipt on a LISTEN
    connection, bare psycopg (the watch figures start later, once the
    commit has returned)."""

    async def measure_all() -> list[float]:
        listener = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
        writer = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
        await listener.execute("LISTEN bench_latency")
        latencies = []
        try:
            for _ in range(n):
                sent = time.monotonic()
                await writer.execute("SELECT pg_notify('bench_latency', 'x')")
                async for _ in listener.notifies(stop_after=1, timeout=5):
                    latencies.append(time.monotonic() - sent)
        finally:
            await listener.close()
            await writer.close()
        return latencies

    return asyncio.run(measure_all())


def fresh_statistics(database_url: str) -> None:
    """ANALYZE of the runs table, as autovacuum does on a server that has been
    up for a while. The loads add thousands of runs in seconds; the planner
    would otherwise go on with plans its connections cached when the table
    had a few rows (for StartRun's reuse lookup, a scan of every run of the
    tenant: 2-4x its latency by the third round), which no long-running
    database keeps for long."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE runs")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Fanout:
    """One WatchRun fan-out: the streams that got the terminal state, how
    the others ended, the terminal state's delay after the commit, and the
    server's memory per open stream."""

    terminals: int
    codes: dict[str, int]
    p50_ms: float
    p99_ms: float
    kib_per_stream: float

    def text(self, streams: int) -> str:
        served = f"{self.terminals}/{streams} served"
        if self.codes.get("OK") != streams:
            served += f" (ended: {self.codes})"
        return (
            f"{served}; {self.kib_per_stream:.1f} KiB/stream; "
            f"terminal p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms"
        )


def median_fanout(rounds: list[Fanout]) -> Fanout:
    """The medians over the rounds; served: the worst round's."""
    worst = min(rounds, key=lambda r: r.terminals)
    return Fanout(
        terminals=worst.terminals,
        codes=worst.codes,
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        kib_per_stream=statistics.median(r.kib_per_stream for r in rounds),
    )


def watch_figure(
    procs: Processes, token: str, streams: int, clients: int, *, baseline: bool = False
) -> Fanout:
    """A fresh server (runsvc, or the bare baseline); `clients` processes
    open streams/clients each on one run; then one commit ends the run (a
    NOTIFY for the baseline)."""
    if baseline:
        server = procs.baseline_process()
        target, run = server.match[1], str(uuid.uuid4())
    else:
        server, target = procs.runsvc_server()
        run = start_one(target, token)
    # Warm the server's watch path (first-call allocations are not per stream).
    with grpc.insecure_channel(target) as channel:
        call = runs_pb2_grpc.RunServiceStub(channel).WatchRun(
            runs_pb2.WatchRunRequest(
                tenant_external_id=TENANT, run_type="snapshot_capture", run_id=run
            ),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
        next(call)
        call.cancel()
    time.sleep(1)
    before = server.rss_kib()
    each = streams // clients
    watchers = [
        client("watch", target=target, token=token, run_id=run, streams=each)
        for _ in range(clients)
    ]
    for w in watchers:
        w.stdout.readline()  # "ready": each of its streams has its first state
    time.sleep(1)
    per_stream = (server.rss_kib() - before) / streams
    with psycopg.connect(procs.database_url, autocommit=True) as conn:
        if baseline:
            conn.execute("NOTIFY bench_fanout")
        else:
            conn.execute(
                "UPDATE runs SET status = 'succeeded', finished_at = now(), "
                "version = version + 1 WHERE id = %s",
                (run,),
            )
        committed = time.monotonic()
    results = [json.loads(w.communicate(timeout=300)[0].strip().splitlines()[-1]) for w in watchers]
    server.stop()
    codes: Counter[str] = Counter()
    for r in results:
        codes.update(r["codes"])
    latencies = [t - committed for r in results for t in r["received_at"]]
    return Fanout(
        terminals=sum(r["terminals"] for r in results),
        codes=dict(codes),
        p50_ms=pct(latencies, 0.5) * 1000,
        p99_ms=pct(latencies, 0.99) * 1000,
        kib_per_stream=per_stream,
    )


def start_one(target: str, token: str) -> str:
    with grpc.insecure_channel(target) as channel:
        return (
            runs_pb2_grpc.RunServiceStub(channel)
            .StartRun(
                runs_pb2.StartRunRequest(
                    tenant_external_id=TENANT,
                    run_type="snapshot_capture",
                    options=runs_pb2.RunStartRequest(payload_hash=uuid.uuid4().hex),
                ),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )
            .run.id
        )


def median_load(loads: list[Load]) -> Load:
    """Each figure's median over the rounds."""
    return Load(
        calls_per_second=statistics.median(load.calls_per_second for load in loads),
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=statistics.median(load.p99_ms for load in loads),
        errors=sum(load.errors for load in loads),
    )


def round_ratio(ours: list[Any], base: list[Any], figure: str, suffix: str = "") -> str:
    """One figure (a field of Load or Fanout) of runsvc over its baseline,
    round by round: the median of the rounds' ratios, and their range."""
    ratios = [getattr(o, figure) / getattr(b, figure) for o, b in zip(ours, base, strict=True)]
    text = f"{statistics.median(ratios):.2f}{suffix}"
    if len(ratios) > 1:
        text += f" ({min(ratios):.2f}-{max(ratios):.2f})"
    return text


def throughput_row(
    figure: str, ours: list[Load], base: list[Load], goal: str = "", base_name: str = "INSERT"
) -> Row:
    return Row(
        figure,
        median_load(ours).text(),
        f"{base_name} {median_load(base).text()}",
        round_ratio(ours, base, "calls_per_second"),
        goal,
    )


def latency_row(figure: str, ours: list[Load], base: list[Load], goal: str = "") -> Row:
    return Row(
        figure,
        f"p50 {median_load(ours).p50_ms:.2f} ms",
        f"INSERT p50 {median_load(base).p50_ms:.2f} ms",
        round_ratio(ours, base, "p50_ms", "x slower"),
        goal,
    )


def bench(args: argparse.Namespace, procs: Processes) -> list[Row]:
    seed(procs.database_url, {"tenants": [{"externalId": TENANT}]})
    token = create_token(procs.database_url, name="bench", role="operator", tenants=None)
    _, target = procs.runsvc_server()
    baseline = procs.baseline_server()
    load = {"token": token, "seconds": args.seconds, "warmup": 0.5}
    rows: list[Row] = []

    def interleaved(*loads: tuple[str, dict[str, object]]) -> list[list[Load]]:
        """Each load (client kind, options) measured `args.rounds` times, in
        turn with the others, so that a slow spell of the machine weighs on
        all of them alike: the ratios are taken round by round."""
        measured: list[list[Load]] = [[] for _ in loads]
        for _ in range(args.rounds):
            for results, (kind, options) in zip(measured, loads, strict=True):
                fresh_statistics(procs.database_url)
                results.append(measure(kind, **options, **load))
        return measured

    # StartRun against the INSERT baseline
    new50, reused50, insert50 = interleaved(
        ("grpc", {"target": target, "method": "start-new", "concurrency": 50}),
        ("grpc", {"target": target, "method": "start-reused", "concurrency": 50}),
        ("grpc", {"target": baseline, "method": "start-new", "concurrency": 50}),
    )
    new1, reused1, insert1 = interleaved(
        ("grpc", {"target": target, "method": "start-new", "concurrency": 1}),
        ("grpc", {"target": target, "method": "start-reused", "concurrency": 1}),
        ("grpc", {"target": baseline, "method": "start-new", "concurrency": 1}),
    )
    rows.append(throughput_row("StartRun, new runs, 50 in flight", new50, insert50, ">= 0.6"))
    rows.append(latency_row("StartRun, new runs, 1 in flight", new1, insert1, "<= 1.5x"))
    rows.append(throughput_row("StartRun, same key (reused), 50 in flight", reused50, insert50))
    rows.append(latency_row("StartRun, same key (reused), 1 in flight", reused1, insert1))

    # GetRun against the SELECT baseline, the gateway against GetRun
    run_id = start_one(target, token)
    http = procs.gateway(target)
    path = f"{http}/admin/t/{TENANT}/runs/snapshot_capture/{run_id}"
    get = {"method": "get", "concurrency": 50, "run_id": run_id}
    get50, select50, gateway50 = interleaved(
        ("grpc", {"target": target, **get}),
        ("grpc", {"target": baseline, **get}),
        ("http", {"url": path, "concurrency": 50}),
    )
    rows.append(throughput_row("GetRun, 50 in flight", get50, select50, ">= 0.8", "SELECT"))
    rows.append(
        Row(
            "gateway GET, 50 in flight, keep-alive",
            median_load(gateway50).text(),
            "GetRun " + median_load(get50).text(),
            f"{round_ratio(gateway50, get50, 'calls_per_second')}, "
            f"p99 {round_ratio(gateway50, get50, 'p99_ms', 'x')}",
            ">= 0.5, p99 <= 3x",
        )
    )

    # WatchRun fan-out against raw LISTEN/NOTIFY and a bare grpc.aio fan-out
    latencies = listen_notify_latency(procs.database_url, 200)
    rows.append(
        Row(
            "LISTEN/NOTIFY, commit sent -> receipt (bare psycopg)",
            "",
            f"p50 {pct(latencies, 0.5) * 1000:.1f} ms, p99 {pct(latencies, 0.99) * 1000:.1f} ms",
            "",
            "",
        )
    )
    for streams in args.watch_streams:
        # Fresh servers each round, runsvc's and the bare one's in turn.
        ours: list[Fanout] = []
        bare: list[Fanout] = []
        for _ in range(args.rounds):
            ours.append(watch_figure(procs, token, streams, clients=4))
            bare.append(watch_figure(procs, token, streams, clients=4, baseline=True))
        rows.append(
            Row(
                f"WatchRun, {streams:,} streams on one run (4 client processes)",
                median_fanout(ours).text(streams),
                f"bare grpc.aio + NOTIFY: {median_fanout(bare).text(streams)}",
                f"memory {round_ratio(ours, bare, 'kib_per_stream', 'x')}, "
                f"p99 {round_ratio(ours, bare, 'p99_ms', 'x')}",
                "all served, <= 20 KiB, p99 <= 150 ms",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="measured seconds per load and round"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of each comparison (ratios: median, range)"
    )
    parser.add_argument(
        "--watch-streams", type=int, nargs="*", default=[1000, 5000], help="WatchRun figures"
    )
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=["grpc", "http", "watch"], help=argparse.SUPPRESS)
    for hidden in ("target", "method", "token", "run-id", "url"):
        parser.add_argument(f"--{hidden}", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=0.5, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_baseline:
        asyncio.run(serve_baseline())
        return
    if args.client:
        runner = {"grpc": grpc_load, "http": http_load, "watch": watch_load}[args.client]
        print(json.dumps(asyncio.run(runner(args))), flush=True)
        return

    load = os.getloadavg()
    console.print(
        f"runsvc request path, {os.cpu_count()} cores, "
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    with (
        admin_url() as admin,
        bench_database(admin) as url,
        tempfile.TemporaryDirectory() as logs,
        contextlib.ExitStack() as stack,
    ):
        rows = bench(args, Processes(url, Path(logs), stack))
    table = Table(title="runsvc beside its bare baselines (same run, same client)")
    for column in ("figure", "runsvc", "baseline", "ratio", "goal"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.figure, row.runsvc, row.baseline, row.ratio, row.goal)
    console.print(table)


if __name__ == "__main__":
    main()
