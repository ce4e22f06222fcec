"""The process commands: `runsvc dev`, `runsvc serve` and `runsvc worker`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from runsvc import event_loop
from runsvc.cli.args import address, positive
from runsvc.config import Settings

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"
DEFAULT_HTTP_ADDR = "127.0.0.1:8080"


def register(commands: argparse._SubParsersAction) -> None:
    dev = commands.add_parser("dev", help="run everything locally with an embedded Postgres")
    dev.add_argument("--data-dir", type=Path, default=Path(".runsvc"), help="default: .runsvc/")
    dev.add_argument("--grpc-addr", type=address, default=DEFAULT_GRPC_ADDR)
    dev.add_argument("--http-addr", type=address, default=DEFAULT_HTTP_ADDR)
    for process, port in (("server", 9464), ("worker", 9465), ("gateway", 9466)):
        dev.add_argument(
            f"--{process}-metrics-addr",
            type=address,
            default=f"127.0.0.1:{port}",
            help=f"the {process}'s metrics endpoint (default 127.0.0.1:{port})",
        )
    dev.add_argument(
        "--graph-emulator",
        action="store_true",
        help="serve the demo tenant from a Microsoft Graph emulator (the Graph TenantSource)",
    )
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
    _metrics_addr(serve)
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run Dramatiq worker processes")
    worker.add_argument("--processes", type=positive, default=1)
    worker.add_argument("--threads", type=positive, default=4)
    _metrics_addr(worker)
    worker.set_defaults(handler=_worker)


def _metrics_addr(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--metrics-addr",
        type=address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (RUNSVC_METRICS_ADDR; "
        "default: off)",
    )


def _dev(args: argparse.Namespace) -> int:
    from runsvc.dev import DevAddresses, run_dev

    addresses = DevAddresses(
        grpc=args.grpc_addr,
        http=args.http_addr,
        server_metrics=args.server_metrics_addr,
        worker_metrics=args.worker_metrics_addr,
        gateway_metrics=args.gateway_metrics_addr,
    )
    return run_dev(args.data_dir, addresses, graph_emulator=args.graph_emulator)


def _serve(args: argparse.Namespace) -> int:
    from runsvc.server.app import serve
    from runsvc_observe.tracing import configure_tracing

    settings = Settings.from_env().with_tls(args.tls_cert, args.tls_key, args.tls_client_ca)
    configure_tracing("runsvc-server")
    # The loop under every call: with uvloop the server's CPU per GetRun
    # call is about a fifth less (benchmarks/bench_request_path.py).
    event_loop.run(serve(settings.with_metrics(args.metrics_addr), args.grpc_addr))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from runsvc.worker.launch import run_worker

    settings = Settings.from_env()
    return run_worker(
        settings.with_metrics(args.metrics_addr), processes=args.processes, threads=args.threads
    )
