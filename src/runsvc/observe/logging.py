"""Log set-up of runsvc's processes: the shared format (RUNSVC_LOG_FORMAT)
for runsvc's, Dramatiq's, grpc's and psycopg's loggers alike, and the
fields that tie a line to its run."""

from __future__ import annotations

import logging
import uuid
from typing import Any, Protocol, TextIO

from runsvc.model import RunType
from runsvc_observe.logging import configure_logging

# Libraries that are chatty at INFO about things operators need not see.
_QUIET = {"pika": logging.WARNING, "psycopg.pool": logging.WARNING}


def configure_process_logging(*, stream: TextIO | None = None) -> None:
    """One handler, one format, for every logger of this process."""
    configure_logging(stream=stream, quiet=_QUIET)


class RunLike(Protocol):
    """What observing needs of a run: the record, or the worker's claim."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def tenant_external_id(self) -> str: ...
    @property
    def run_type(self) -> RunType: ...
    @property
    def attempts(self) -> int: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def trace_context(self) -> dict[str, str] | None: ...


def run_fields(run: RunLike) -> dict[str, Any]:
    """The context fields of a run's log lines."""
    return {
        "run_id": str(run.id),
        "tenant": run.tenant_external_id,
        "run_type": run.run_type.value,
        "request_id": run.request_id,
    }
