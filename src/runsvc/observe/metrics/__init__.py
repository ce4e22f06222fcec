"""Every Prometheus series runsvc's server and worker processes export, one
module per process kind (`server`, `worker`): a process creates only its own
series (in the worker's multiprocess mode, every series created is exported).

Names follow the ecosystem's conventions so that stock dashboards work: the
gRPC series as go-grpc-prometheus names them, runsvc's own under `runsvc_`.
Label values are bounded: run types, statuses, outcomes, operations, gRPC
methods and codes — never run ids or tenants."""

from __future__ import annotations

# Latencies of calls that usually take milliseconds, sometimes seconds.
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
