"""The worker's metrics endpoint: a Dramatiq fork process that serves the
sum of every worker process's values (multiprocess mode) on the socket that
`runsvc worker` bound before Dramatiq forked."""

from __future__ import annotations

import socket

from runsvc.observe.logging import configure_process_logging
from runsvc_observe.multiprocess import serve_forever

# Set by runsvc.worker.launch in the parent; the fork process inherits it.
LISTENER: socket.socket | None = None


def serve() -> int:
    configure_process_logging()
    if LISTENER is None:
        raise RuntimeError("the worker's metrics socket was not bound before the fork")
    serve_forever(LISTENER, "runsvc worker metrics on")
    return 0
