"""What a run's life looks like to operators, at the few places the server
and worker call: one log line and the worker's metrics of each event
(started, claimed, a batch, finished), with the run's context on the
worker's lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from runsvc.model import Run, RunState
from runsvc.observe import tracing
from runsvc.observe.logging import RunLike, run_fields
from runsvc.observe.metrics import worker as metrics
from runsvc_observe.logging import log_context

log = logging.getLogger("runsvc.runs")


def log_run_started(run: RunState, reused: bool) -> None:
    """StartRun's (and RetryRun's) one line per created or reused run; its
    request id is the call's own, from the log context (a reused run keeps
    its creator's)."""
    log.info(
        "run %s %s",
        run.id,
        "reused" if reused else "created",
        extra={
            "run_id": str(run.id),
            "tenant": run.tenant_external_id,
            "run_type": run.run_type.value,
            "reused": reused,
            "status": run.status.value,
        },
    )


@contextmanager
def observe_execution(run: RunLike) -> Iterator[None]:
    """Around a claimed run's execution: its log context, its span (in the
    caller's trace) and the claimed / executing series."""
    run_type = run.run_type.value
    metrics.runs_claimed.labels(run_type).inc()
    executing = metrics.runs_executing.labels(run_type)
    executing.inc()
    try:
        with log_context(**run_fields(run)), tracing.execution_span(run):
            yield
    finally:
        executing.dec()


def batch_span(run: RunLike, size: int) -> AbstractContextManager[object]:
    """Around recording one batch: its span, in the run's execution span."""
    return tracing.batch_span(run, size)


def batch_done(run: RunLike, seconds: float) -> None:
    """A batch's whole time: waiting for its items from the source, recording them."""
    metrics.batch_seconds.labels(run.run_type.value).observe(seconds)


def source_called(operation: str, result: str, seconds: float) -> None:
    """One TenantSource call (`operation`: the port method) and its result."""
    metrics.source_call_seconds.labels(operation, result).observe(seconds)


def count_items(run: RunLike, succeeded: int, failed: int) -> None:
    """Outcomes just recorded (each item once: what the database counted)."""
    run_type = run.run_type.value
    if succeeded:
        metrics.items.labels(run_type, "succeeded").inc(succeeded)
    if failed:
        metrics.items.labels(run_type, "failed").inc(failed)


def log_run_finished(run: Run) -> None:
    """A finished run's line: its status, counts and safe error code."""
    metrics.runs_finished.labels(run.run_type.value, run.status.value).inc()
    code = run.safe_error.code if run.safe_error else None
    log.info(
        "run %s %s: %d/%d succeeded, %d failed%s",
        run.id,
        run.status.value,
        run.succeeded,
        run.total,
        run.failed,
        f" ({code})" if code else "",
        extra={
            "status": run.status.value,
            "total": run.total,
            "succeeded": run.succeeded,
            "failed": run.failed,
            "error_code": code,
        },
    )


def lease_renewed(held: bool) -> None:
    metrics.lease_renewals.labels("renewed" if held else "lost").inc()


def lease_renewal_failed() -> None:
    metrics.lease_renewals.labels("error").inc()


def lease_lost() -> None:
    metrics.leases_lost.inc()


def redispatched(count: int) -> None:
    if count:
        metrics.reaper_redispatched.inc(count)
