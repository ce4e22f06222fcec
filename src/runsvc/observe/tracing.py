"""runsvc's own spans: a run's execution in the worker, continuing the trace
of the StartRun call that created it (its context is stored with the run),
with one span per batch of items. Without OTEL_* settings these are the
API's no-op spans."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span

from runsvc.observe.logging import RunLike
from runsvc_observe.tracing import extract_context

_tracer = trace.get_tracer("runsvc.worker")


@contextmanager
def execution_span(run: RunLike) -> Iterator[Span]:
    with _tracer.start_as_current_span(
        "run.execute",
        context=extract_context(run.trace_context),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "runsvc.run_id": str(run.id),
            "runsvc.run_type": run.run_type.value,
            "runsvc.attempt": run.attempts,
        },
    ) as span:
        yield span


@contextmanager
def batch_span(run: RunLike, size: int) -> Iterator[Span]:
    with _tracer.start_as_current_span(
        "run.batch", attributes={"runsvc.run_id": str(run.id), "runsvc.batch_size": size}
    ) as span:
        yield span
