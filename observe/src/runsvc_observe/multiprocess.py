"""Metrics of a group of forked processes (Dramatiq's workers) with
prometheus-client's multiprocess mode: each process writes its values to
files in one directory, and one endpoint process adds them up. This module
imports prometheus-client only where it serves: the directory must be set
before the library is first imported in the group's parent, or the forked
processes inherit a library that keeps values in memory."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

# prometheus-client reads it when it is first imported in a process.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def parse_address(value: str) -> tuple[str, int]:
    """HOST:PORT ([v6]:PORT too); port 0 picks a free one. ValueError if not."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def prepare_multiprocess_dir(path: Path) -> None:
    """Empties (or makes) the group's directory and points this process and
    its children at it: an earlier run's values must not add to this one's."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROCESS_VARIABLE] = str(path)


def bind_listener(address: str) -> socket.socket:
    """A listening socket for the endpoint, bound now (so that a port in use
    is one clear error before anything starts; children inherit it)."""
    host, port = parse_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen on {address} for metrics: {exc.strerror}"
        ) from None
    sock.listen(16)
    return sock


def mark_process_dead(pid: int | None = None) -> None:
    """Drops an ending process's live gauges (its counters keep counting)."""
    if os.environ.get(MULTIPROCESS_VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def serve_forever(listener: socket.socket, announce: str) -> None:
    """Serves the sum of the group's values on `listener` in this (dedicated)
    process until it is told to stop; prints `announce` and the URL first."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess

    from runsvc_observe.metrics import url

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    server = WSGIServer(listener.getsockname()[:2], QuietHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    host, port = server.server_address = listener.getsockname()[:2]
    server.server_name, server.server_port = host, port  # what server_bind would set
    server.setup_environ()
    server.set_app(make_wsgi_app(registry))
    print(f"{announce} {url(host, port)}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
