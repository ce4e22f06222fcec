"""The worker processes' series. Dramatiq's processes share them through
prometheus-client's multiprocess mode (set up by `runsvc worker` before they
start), hence the gauges' `multiprocess_mode`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from runsvc.observe.metrics import CALL_BUCKETS

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
    buckets=CALL_BUCKETS,
)
source_call_seconds = Histogram(
    "runsvc_source_call_seconds",
    "TenantSource calls by operation and result (ok, rejected, unavailable, "
    "throttled, timeout, error).",
    ["operation", "result"],
    buckets=CALL_BUCKETS,
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
