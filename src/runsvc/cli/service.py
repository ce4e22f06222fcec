"""The process commands: `runsvc dev`, `runsvc serve` and `runsvc worker`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from runsvc.cli.args import address, positive
from runsvc.config import Settings

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"
DEFAULT_HTTP_ADDR = "127.0.0.1:8080"


def register(commands: argparse._SubParsersAction) -> None:
    dev = commands.add_parser("dev", help="run everything locally with an embedded Postgres")
    dev.add_argument("--data-dir", type=Path, default=Path(".runsvc"), help="default: .runsvc/")
    dev.add_argument("--grpc-addr", type=address, default=DEFAULT_GRPC_ADDR)
    dev.add_argument("--http-addr", type=address, default=DEFAULT_HTTP_ADDR)
    dev.set_defaults(handler=_dev)

    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.add_argument(
        "--grpc-addr", type=address, default=os.environ.get("RUNSVC_GRPC_ADDR", DEFAULT_GRPC_ADDR)
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="server certificate (RUNSVC_TLS_CERT)")
    serve.add_argument("--tls-key", metavar="PEM", help="its private key (RUNSVC_TLS_KEY)")
    serve.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="require client certificates signed by this CA: mutual TLS (RUNSVC_TLS_CLIENT_CA)",
    )
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run Dramatiq worker processes")
    worker.add_argument("--processes", type=positive, default=1)
    worker.add_argument("--threads", type=positive, default=4)
    worker.set_defaults(handler=_worker)


def _dev(args: argparse.Namespace) -> int:
    from runsvc.dev import run_dev

    return run_dev(args.data_dir, args.grpc_addr, args.http_addr)


def _serve(args: argparse.Namespace) -> int:
    from runsvc.server.app import serve

    settings = Settings.from_env().with_tls(args.tls_cert, args.tls_key, args.tls_client_ca)
    asyncio.run(serve(settings, args.grpc_addr))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from runsvc.broker import prepare_broker

    settings = Settings.from_env()
    prepare_broker(settings.broker_url)
    # Dramatiq's own CLI supervises the processes and threads.
    dramatiq_args = [
        sys.executable,
        "-m",
        "dramatiq",
        "runsvc.worker.actors",
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
        "--queues",
        settings.queue_name,
        # A stopping worker gives its runs back within the grace period;
        # Dramatiq waits a little longer for its threads, never minutes.
        "--worker-shutdown-timeout",
        str(int((settings.shutdown_grace_seconds + 2) * 1000)),
    ]
    os.execv(sys.executable, dramatiq_args)
