"""Driver errors translated once, at the store boundary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg


class StoreUnavailable(Exception):
    """The database cannot be reached or is shutting down; retrying may help."""


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        # The driver's text may name hosts and users: keep it out of the message.
        raise StoreUnavailable("database unavailable") from exc
