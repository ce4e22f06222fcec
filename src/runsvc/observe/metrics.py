"""Every Prometheus series runsvc's server and worker processes export.

Names follow the ecosystem's conventions so that stock dashboards work: the
gRPC series as go-grpc-prometheus names them, runsvc's own under `runsvc_`.
Label values are bounded: run types, statuses, outcomes, operations, gRPC
methods and codes — never run ids or tenants. In the worker, Dramatiq's
processes share values through prometheus-client's multiprocess mode (set up
by `runsvc worker` before they start), hence the gauges' `multiprocess_mode`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

# Latencies of calls that usually take milliseconds, sometimes seconds.
_CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# --- server: gRPC ------------------------------------------------------------

_GRPC = ["grpc_type", "grpc_service", "grpc_method"]
grpc_started = Counter(
    "grpc_server_started_total", "RPCs started on the server.", _GRPC
)  # fmt: skip
grpc_handled = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, whatever their status.",
    [*_GRPC, "grpc_code"],
)
grpc_handling_seconds = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its status (a stream: its whole life).",
    _GRPC,
    buckets=_CALL_BUCKETS,
)

# --- server: runs, watches, dispatch -----------------------------------------

runs_started = Counter(
    "runsvc_runs_started_total",
    "StartRun calls that created a run (reused=false) or returned an active one.",
    ["run_type", "reused"],
)
watch_streams = Gauge(
    "runsvc_watch_streams", "Open WatchRun streams.", multiprocess_mode="livesum"
)  # fmt: skip
watch_hub_reconnects = Counter(
    "runsvc_watch_hub_reconnects_total",
    "Times the watch hub's LISTEN connection was opened again after losing it.",
)
watch_delivery_seconds = Histogram(
    "runsvc_watch_delivery_seconds",
    "From a change notification's arrival to its record handed to the streams.",
    buckets=_CALL_BUCKETS,
)
dispatch_failures = Counter(
    "runsvc_dispatch_failures_total",
    "Run messages the server could not send (the reaper sends them again).",
)
database_reachable = Gauge(
    "runsvc_database_reachable",
    "1 while the server reaches Postgres (its readiness), else 0.",
    multiprocess_mode="liveall",
)

# --- worker --------------------------------------------------------------------

runs_claimed = Counter("runsvc_runs_claimed_total", "Runs a worker took.", ["run_type"])
runs_finished = Counter(
    "runsvc_runs_finished_total", "Runs a worker ended, by final status.", ["run_type", "status"]
)
runs_executing = Gauge(
    "runsvc_runs_executing",
    "Runs being executed right now.",
    ["run_type"],
    multiprocess_mode="livesum",
)
items = Counter(
    "runsvc_items_total",
    "Item outcomes recorded, by outcome (succeeded, failed).",
    ["run_type", "outcome"],
)
batch_seconds = Histogram(
    "runsvc_batch_duration_seconds",
    "Time to process and record one batch of items.",
    ["run_type"],
    buckets=_CALL_BUCKETS,
)
source_call_seconds = Histogram(
    "runsvc_source_call_seconds",
    "TenantSource calls by operation and result (ok, rejected, unavailable, "
    "throttled, timeout, error).",
    ["operation", "result"],
    buckets=_CALL_BUCKETS,
)
lease_renewals = Counter(
    "runsvc_lease_renewals_total",
    "Lease renewals by result (renewed, lost, error).",
    ["result"],
)
leases_lost = Counter(
    "runsvc_leases_lost_total", "Runs a worker gave up because another one holds the lease."
)
reaper_redispatched = Counter(
    "runsvc_reaper_redispatched_total",
    "Messages the reaper sent again (lost messages, dead workers).",
)


@contextmanager
def timed(histogram: Histogram, **labels: str) -> Iterator[None]:
    """Observes the block's duration, also when it raises."""
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(**labels).observe(time.perf_counter() - started)
