"""A scripted in-process RunService for what a real server will not do on
demand: fail with UNAVAILABLE a given number of times, serve TLS, and show
the metadata its callers sent."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc


@dataclass
class Script:
    unavailable_first: int = 0  # calls answered UNAVAILABLE before one succeeds
    abort: grpc.StatusCode | None = None  # every call fails with this code
    watch_breaks: int = 0  # WatchRun streams that send one state, then fail UNAVAILABLE
    watch_down_after_break: bool = False  # ... and every WatchRun after them fails
    watch_after_versions: list[int | None] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    metadata: list[dict[str, str]] = field(default_factory=list)


class ScriptedRunService(runs_pb2_grpc.RunServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    def _enter(self, name: str, context: grpc.ServicerContext) -> None:
        self.script.calls[name] = self.script.calls.get(name, 0) + 1
        self.script.metadata.append(dict(context.invocation_metadata()))
        if self.script.abort is not None:
            context.abort(self.script.abort, f"scripted {self.script.abort.name}")
        if self.script.calls[name] <= self.script.unavailable_first:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")

    def StartRun(self, request, context):
        self._enter("StartRun", context)
        run = runs_pb2.RunRecord(
            id="run-1",
            tenant_external_id=request.tenant_external_id,
            type=request.run_type,
            status=runs_pb2.RUN_STATUS_QUEUED,
        )
        return runs_pb2.StartRunResponse(run=run)

    def GetRun(self, request, context):
        self._enter("GetRun", context)
        run = runs_pb2.RunRecord(
            id=request.run_id,
            tenant_external_id=request.tenant_external_id,
            type=request.run_type,
            status=runs_pb2.RUN_STATUS_SUCCEEDED,
        )
        return runs_pb2.GetRunResponse(run=run)

    def WatchRun(self, request, context):
        self._enter("WatchRun", context)
        after = request.after_version if request.HasField("after_version") else None
        self.script.watch_after_versions.append(after)
        if self.script.watch_down_after_break and self.script.watch_breaks == 0:
            context.abort(grpc.StatusCode.UNAVAILABLE, "server down")
        for version in range((after or 0) + 1, 3):
            status = runs_pb2.RUN_STATUS_SUCCEEDED if version == 2 else runs_pb2.RUN_STATUS_RUNNING
            yield runs_pb2.WatchRunResponse(
                run=runs_pb2.RunRecord(id=request.run_id, status=status, version=version)
            )
            if self.script.watch_breaks > 0:
                self.script.watch_breaks -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "server going away")


@contextlib.contextmanager
def scripted_server(
    script: Script, *, server_credentials: grpc.ServerCredentials | None = None
) -> Iterator[str]:
    """Serves the script on a free port of 127.0.0.1; yields host:port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    runs_pb2_grpc.add_RunServiceServicer_to_server(ScriptedRunService(script), server)
    if server_credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", server_credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@dataclass(frozen=True)
class Certs:
    ca: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes


def make_certs(directory: Path) -> Certs:
    """A throwaway CA and a server and a client certificate, made by openssl."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    directory.mkdir(parents=True, exist_ok=True)
    new_key = ["-newkey", "rsa:2048", "-nodes"]
    run("req", "-x509", *new_key, "-days", "2", "-subj", "/CN=runsvc test CA",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("req", *new_key, "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
            "-out", f"{name}.pem")  # fmt: skip

    def read(name: str) -> bytes:
        return (directory / name).read_bytes()

    return Certs(
        read("ca.pem"), read("server.pem"), read("server.key"), read("client.pem"),
        read("client.key"),
    )  # fmt: skip
