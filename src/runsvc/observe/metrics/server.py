"""The server process's series: gRPC calls, runs started, watch streams and
the watch hub, dispatch failures, database reachability (runsvc.server adds
the queue gauges it reads from the database at each scrape)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from runsvc.observe.metrics import CALL_BUCKETS

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
    buckets=CALL_BUCKETS,
)

# --- server: runs, watches, dispatch -----------------------------------------

runs_started = Counter(
    "runsvc_runs_started_total",
    "StartRun calls that created a run (reused=false) or returned an active one.",
    ["run_type", "reused"],
)
watch_streams = Gauge(
    "runsvc_watch_streams", "Open WatchRun streams."
)  # fmt: skip
watch_hub_reconnects = Counter(
    "runsvc_watch_hub_reconnects_total",
    "Times the watch hub's LISTEN connection was opened again after losing it.",
)
watch_delivery_seconds = Histogram(
    "runsvc_watch_delivery_seconds",
    "From a change notification's arrival to its record handed to the streams.",
    buckets=CALL_BUCKETS,
)
dispatch_failures = Counter(
    "runsvc_dispatch_failures_total",
    "Run messages the server could not send (the reaper sends them again).",
)
database_reachable = Gauge(
    "runsvc_database_reachable",
    "1 while the server reaches Postgres (its readiness), else 0.",
)
