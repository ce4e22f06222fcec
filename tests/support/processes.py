"""Starts runsvc processes (server, worker, ...) on free ports, waits until
they are ready, and stops them by process group."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

READY_TIMEOUT = 60.0

# Every process started, in order: a failing test's report shows the end of
# the logs of the ones it started (conftest's pytest_runtest_makereport).
STARTED: list[ServiceProcess] = []


class ServiceProcess:
    """A child process whose output goes to a log file that tests can read."""

    def __init__(self, name: str, cmd: Sequence[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        # A session of its own: stopping it stops its children (Dramatiq's
        # worker processes) too.
        self.proc = subprocess.Popen(
            list(cmd),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        STARTED.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_for(self, pattern: str, timeout: float = READY_TIMEOUT) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = regex.search(self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.output()[-4000:]}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} never printed {pattern!r}:\n{self.output()[-4000:]}")

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the whole process group: no cleanup of any kind."""
        self.signal_group(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Dramatiq's worker processes may outlive their parent for a moment.
        self.signal_group(signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


def runsvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "runsvc.cli", *args]


def start_server(env: dict[str, str], log_dir: Path) -> tuple[ServiceProcess, str]:
    """Starts `runsvc serve` on a free port; returns it and its target."""
    server = ServiceProcess("server", runsvc("serve", "--grpc-addr", "127.0.0.1:0"), env, log_dir)
    try:
        match = server.wait_for(r"listening on (\S+:\d+)")
    except Exception:
        server.stop()
        raise
    return server, match[1]


def start_worker(
    env: dict[str, str], log_dir: Path, *, processes: int = 1, threads: int = 2
) -> ServiceProcess:
    worker = ServiceProcess(
        "worker",
        runsvc("worker", "--processes", str(processes), "--threads", str(threads)),
        env,
        log_dir,
    )
    try:
        for _ in range(processes):
            worker.wait_for(r"worker ready")
        worker.wait_for(r"Worker process is ready for action", timeout=READY_TIMEOUT)
    except Exception:
        worker.stop()
        raise
    return worker


def free_port() -> int:
    """A port free right now, for programs that need an address up front
    (`runsvc dev` writes its addresses to dev.env before its children bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
