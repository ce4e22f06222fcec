"""`runsvc dev`: everything from one command with no outside services, and
nothing left behind after Ctrl-C/SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import grpc
import httpx
import psutil
import psycopg
import pytest
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from tests.conftest import PROJECT_ROOT
from tests.support.auth import BearerToken
from tests.support.grpcurl import SERVICE, grpcurl
from tests.support.metrics import scrape, value
from tests.support.processes import ServiceProcess, free_port, runsvc
from tests.support.runs import get, start, wait_terminal


def dev_env_file(path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        values[key] = value.strip("'")
    return values


def postgres_processes(data_dir) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc)
    return found


def dev_command(data_dir, grpc_addr: str, *extra: str, **addresses: str) -> list[str]:
    """`runsvc dev` on free ports (the metrics ports' defaults are fixed)."""
    args = ["dev", "--data-dir", str(data_dir), "--grpc-addr", grpc_addr]
    for flag in ("http", "server_metrics", "worker_metrics", "gateway_metrics"):
        address = addresses.get(flag) or f"127.0.0.1:{free_port()}"
        args += [f"--{flag.replace('_', '-')}-addr", address]
    return runsvc(*args, *extra)


def start_dev(data_dir, grpc_addr, log_dir, *extra: str) -> ServiceProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSVC_")}
    dev = ServiceProcess("dev", dev_command(data_dir, grpc_addr, *extra), env, log_dir)
    dev.wait_for(r"Ctrl-C stops everything", timeout=120)
    return dev


def wait_serving(target: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if grpcurl(target, "list").returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError("dev server never answered")


def wait_http_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("dev gateway never became ready")


def test_dev_runs_everything_and_stops_cleanly_keeping_data(tmp_path, log_dir):
    os.chmod(tmp_path, 0o755)  # embedded Postgres runs as its own user under root
    data_dir = tmp_path / "devdata"
    grpc_addr = f"127.0.0.1:{free_port()}"

    dev = start_dev(data_dir, grpc_addr, log_dir)
    try:
        output = dev.output()
        # Quiet: the endpoint block is on the first screen, Postgres's talk in its log.
        first_screen = "\n".join(output.splitlines()[:15])
        for shown in ("postgres  postgresql://", f"grpc      {grpc_addr}", "token     rsvc_",
                      "http      http://", "metrics   server http://", "env       source",
                      "Ctrl-C stops everything."):  # fmt: skip
            assert shown in first_screen, first_screen
        assert "initdb" not in output and "pg_ctl" not in output
        assert "initdb" in (data_dir / "postgres.log").read_text()
        env = dev_env_file(data_dir / "dev.env")
        assert env["RUNSVC_GRPC_TARGET"] == grpc_addr
        assert env["RUNSVC_DATABASE_URL"].startswith("postgresql://")
        token = env["RUNSVC_TOKEN"]
        assert token.startswith("rsvc_") and token in output  # printed for the developer
        assert oct((data_dir / "dev.env").stat().st_mode & 0o777) == "0o600"
        wait_serving(grpc_addr)
        assert SERVICE in grpcurl(grpc_addr, "list").stdout

        with grpc.insecure_channel(grpc_addr) as channel:
            stub = runs_pb2_grpc.RunServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                start(stub, "demo-tenant", "snapshot_capture")
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

            authed = runs_pb2_grpc.RunServiceStub(
                grpc.intercept_channel(channel, BearerToken(token))
            )
            run = wait_terminal(authed, start(authed, "demo-tenant", "snapshot_capture").run)
            assert run.counts.succeeded == 6  # the demo tenant's policies
        called = grpcurl(
            grpc_addr,
            f"{SERVICE}/GetRun",
            data={"tenant_external_id": "demo-tenant", "run_type": "snapshot_capture",
                  "run_id": run.id},
            token=token,
        )  # fmt: skip
        assert called.returncode == 0, called.stderr

        # The REST gateway answers over real HTTP, in front of the same server.
        http_url = env["RUNSVC_HTTP_URL"]
        assert f"http      {http_url}/admin" in output
        wait_http_ready(http_url)
        run_url = f"{http_url}/admin/t/demo-tenant/runs/snapshot_capture/{run.id}"
        assert httpx.get(run_url, timeout=10).status_code == 401
        response = httpx.get(run_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "succeeded"
        assert response.json()["counts"] == {"total": 6, "succeeded": 6, "failed": 0}
        # The console is served by the same gateway, at the line's address.
        assert f"console   {http_url}/admin/ui/" in output
        console = httpx.get(f"{http_url}/admin/ui/", timeout=10)
        assert "<title>runsvc console</title>" in console.text
        # A second shell with only dev.env sourced: the grpcurl example and
        # the operator CLI work (grpcurl and runsvc come from the venv on PATH).
        shell = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin"}
        example = PROJECT_ROOT / "examples" / "grpcurl.sh"
        sourced = subprocess.run(
            ["bash", "-c", f"source {data_dir / 'dev.env'} && bash -euo pipefail {example}"
             " && runsvc runs list --json --limit 1"],
            env=shell, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert sourced.returncode == 0, sourced.stdout[-2000:] + sourced.stderr[-2000:]
        assert '"status": "RUN_STATUS_SUCCEEDED"' in sourced.stdout, sourced.stdout[-2000:]
        newest = json.loads(sourced.stdout.splitlines()[-1])["runs"][0]
        assert newest["tenantExternalId"] == "demo-tenant" and newest["status"] == "succeeded"
        # Every process serves its metrics where dev.env says.
        server_metrics = scrape(env["RUNSVC_SERVER_METRICS_URL"])
        assert value(server_metrics, "runsvc_runs_started_total", run_type="snapshot_capture",
                     reused="false") >= 1  # fmt: skip
        assert (
            "runsvc_queue_oldest_age_seconds",
            frozenset({("run_type", "snapshot_capture")}),
        ) in server_metrics
        worker_metrics = scrape(env["RUNSVC_WORKER_METRICS_URL"])
        assert value(worker_metrics, "runsvc_items_total", run_type="snapshot_capture",
                     outcome="succeeded") >= 6  # fmt: skip
        gateway_metrics = scrape(env["RUNSVC_GATEWAY_METRICS_URL"])
        assert value(gateway_metrics, "http_requests_total", method="GET", status="200",
                     route="/admin/t/{tenantExternalId}/runs/{runType}/{runId}") >= 1  # fmt: skip
        for name in ("SERVER", "WORKER", "GATEWAY"):
            assert env[f"RUNSVC_{name}_METRICS_URL"] in output
        children = psutil.Process(dev.pid).children(recursive=True)
        assert children and postgres_processes(data_dir)
    finally:
        dev.proc.send_signal(signal.SIGTERM)  # only the supervisor, as `kill PID` would
        returncode = dev.proc.wait(timeout=60)
    assert returncode == 0, dev.output()[-3000:]
    assert "runsvc dev: stopped" in dev.output()
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not postgres_processes(data_dir)

    # A second start on the same directory keeps the data, and the token.
    again = start_dev(data_dir, grpc_addr, log_dir)
    try:
        assert dev_env_file(data_dir / "dev.env")["RUNSVC_TOKEN"] == token
        wait_serving(grpc_addr)
        with grpc.insecure_channel(grpc_addr) as channel:
            stub = runs_pb2_grpc.RunServiceStub(grpc.intercept_channel(channel, BearerToken(token)))
            kept = get(stub, run)
            assert kept.id == run.id and kept.counts.succeeded == 6
    finally:
        again.stop()  # SIGTERM to the whole group, as Ctrl-C in a terminal would
    assert not postgres_processes(data_dir)


@pytest.mark.parametrize("taken", ["grpc", "http", "worker_metrics"])
def test_a_port_in_use_is_one_clear_line_before_anything_starts(tmp_path, log_dir, taken):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = f"127.0.0.1:{holder.getsockname()[1]}"
        addresses = {"grpc": f"127.0.0.1:{free_port()}", taken: busy}
        done = subprocess.run(
            dev_command(tmp_path / "devdata", addresses.pop("grpc"), **addresses),
            env={k: v for k, v in os.environ.items() if not k.startswith("RUNSVC_")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and busy in lines[0] and "in use" in lines[0], lines
    assert not (tmp_path / "devdata").exists()  # no Postgres was started


def test_dev_token_is_kept_while_valid_and_replaced_when_not(database_url):
    from runsvc.dev import DEV_TOKEN_NAME, ensure_dev_token
    from runsvc.tokens import revoke_token, verify_token

    first = ensure_dev_token(database_url, None)
    assert verify_token(database_url, first).name == DEV_TOKEN_NAME
    assert ensure_dev_token(database_url, first) == first  # a restart keeps it
    replaced = ensure_dev_token(database_url, first[:-4] + "AAAA")  # a tampered dev.env
    assert replaced != first and verify_token(database_url, first) is None
    revoke_token(database_url, DEV_TOKEN_NAME)
    renewed = ensure_dev_token(database_url, replaced)  # revoked by hand
    assert renewed != replaced and verify_token(database_url, renewed).all_tenants
    revoke_token(database_url, DEV_TOKEN_NAME)


def test_dev_with_the_graph_emulator_runs_graph_shaped_runs(tmp_path, log_dir):
    os.chmod(tmp_path, 0o755)
    data_dir = tmp_path / "devgraph"
    grpc_addr = f"127.0.0.1:{free_port()}"
    dev = start_dev(data_dir, grpc_addr, log_dir, "--graph-emulator")
    try:
        output = dev.output()
        env = dev_env_file(data_dir / "dev.env")
        assert env["RUNSVC_GRAPH_URL"].startswith("https://127.0.0.1:")
        assert f"graph     {env['RUNSVC_GRAPH_URL']}" in output
        secret = (data_dir / "graph" / "client-secret").read_text()
        assert oct((data_dir / "graph" / "client-secret").stat().st_mode & 0o777) == "0o600"
        wait_serving(grpc_addr)
        with grpc.insecure_channel(grpc_addr) as channel:
            stub = runs_pb2_grpc.RunServiceStub(
                grpc.intercept_channel(channel, BearerToken(env["RUNSVC_TOKEN"]))
            )
            run = wait_terminal(stub, start(stub, "demo-tenant", "snapshot_capture").run)
        # The emulator's demo tenant: three device configurations, two
        # compliance policies, one settings-catalog policy.
        assert run.status == runs_pb2.RUN_STATUS_SUCCEEDED and run.counts.succeeded == 6
        with psycopg.connect(env["RUNSVC_DATABASE_URL"]) as conn:
            types = conn.execute(
                "SELECT DISTINCT policy_type FROM policy_snapshots WHERE captured_by_run = %s",
                (run.id,),
            ).fetchall()
        assert {t for (t,) in types} == {
            "deviceConfigurations", "deviceCompliancePolicies", "configurationPolicies"
        }  # fmt: skip
    finally:
        dev.stop()
    assert secret not in dev.output()
    assert not postgres_processes(data_dir)
