"""Log set-up of runsvc's processes: the shared format (RUNSVC_LOG_FORMAT)
for runsvc's, Dramatiq's, grpc's and psycopg's loggers alike, and the
fields that tie a line to its run."""

from __future__ import annotations

import logging
from typing import Any, TextIO

from runsvc.model import Run
from runsvc_observe.logging import configure_logging

# Libraries that are chatty at INFO about things operators need not see.
_QUIET = {"pika": logging.WARNING, "psycopg.pool": logging.WARNING}


def configure_process_logging(*, stream: TextIO | None = None) -> None:
    """One handler, one format, for every logger of this process."""
    configure_logging(stream=stream, quiet=_QUIET)


def run_fields(run: Run) -> dict[str, Any]:
    """The context fields of a run's log lines."""
    return {
        "run_id": str(run.id),
        "tenant": run.tenant_external_id,
        "run_type": run.run_type.value,
        "request_id": run.request_id,
    }
