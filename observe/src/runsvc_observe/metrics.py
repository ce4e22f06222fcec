"""The Prometheus endpoint of `--metrics-addr HOST:PORT` (RUNSVC_METRICS_ADDR)
of a single process, serving its registry on a thread of its own. Processes
that fork workers use runsvc_observe.multiprocess instead."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    disable_created_metrics,
    start_http_server,
)

from runsvc_observe.multiprocess import parse_address

__all__ = ["ADDRESS_VARIABLE", "parse_address", "serve_metrics", "url"]

ADDRESS_VARIABLE = "RUNSVC_METRICS_ADDR"

# The `_created` twin of every counter doubles the output for nothing a
# dashboard reads.
disable_created_metrics()


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/metrics"


def serve_metrics(address: str, registry: CollectorRegistry = REGISTRY) -> WSGIServer:
    """Serves `registry` on a daemon thread (`.server_port` is the port it
    got, also for port 0; `.shutdown()` stops it). OSError names the address."""
    host, port = parse_address(address)
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot listen on {address} for metrics: {exc.strerror}"
        ) from None
    return server
