"""The request id that ties one caller's request together across the gateway,
the server and the worker: the caller's `X-Request-Id` when it is sane, else
a new one; it travels as the gRPC metadata `x-request-id`."""

from __future__ import annotations

import os
import re

# The HTTP header (names are case-insensitive) and the gRPC metadata key.
HEADER = "x-request-id"
MAX_LENGTH = 128
# Printable, no spaces or quotes: safe in a log line, a header and a label.
_SANE = re.compile(rf"[A-Za-z0-9._:@/+=-]{{1,{MAX_LENGTH}}}")


def accept(value: str | None) -> str | None:
    """The caller's id if it is one we can pass on as is, else None."""
    if value is None or not _SANE.fullmatch(value):
        return None
    return value


def new() -> str:
    """32 random hex digits, as uuid4().hex but without building a UUID:
    one per call that came without an id."""
    return os.urandom(16).hex()


def from_caller(value: str | None) -> str:
    """The caller's id, or a new one when it sent none (or garbage)."""
    return accept(value) or new()
