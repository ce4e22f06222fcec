"""`runsvc worker`: Dramatiq's own CLI supervises the worker processes and
threads. Before it forks them, this gives its main process the one log
format and, with --metrics-addr, sets up the processes' shared metrics
directory and binds the endpoint, which a Dramatiq fork process serves."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from runsvc.config import Settings
from runsvc_observe.multiprocess import bind_listener, prepare_multiprocess_dir


def run_worker(settings: Settings, *, processes: int, threads: int) -> int:
    args = [
        "runsvc.worker.actors",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--queues",
        settings.queue_name,
        # A stopping worker gives its runs back within the grace period;
        # Dramatiq waits a little longer for its threads, never minutes.
        "--worker-shutdown-timeout",
        str(int((settings.shutdown_grace_seconds + 2) * 1000)),
        # Our handler, set up by `runsvc` already, formats Dramatiq's lines too.
        "--skip-logging",
    ]
    # Runs are long: a process takes no more messages than it has threads
    # (Dramatiq's default is twice as many), so that a message never waits
    # in a busy process while another process idles.
    os.environ.setdefault("dramatiq_queue_prefetch", str(threads))
    metrics_dir: Path | None = None
    if settings.metrics_addr:
        listener = bind_listener(settings.metrics_addr)
        metrics_dir = Path(tempfile.mkdtemp(prefix="runsvc-worker-metrics-"))
        prepare_multiprocess_dir(metrics_dir)
        from runsvc.worker import metrics_endpoint

        metrics_endpoint.LISTENER = listener
        args += ["--fork-function", "runsvc.worker.metrics_endpoint:serve"]
    import dramatiq.cli

    from runsvc.broker import prepare_broker

    prepare_broker(settings.broker_url)
    try:
        return int(dramatiq.cli.main(dramatiq.cli.make_argument_parser().parse_args(args)) or 0)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
