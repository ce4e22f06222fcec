"""`runsvc-gateway --grpc-target HOST:PORT --http-addr HOST:PORT`: serves the
app with uvicorn and prints one ready line with the real address (also
with port 0)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import socket
import sys

import uvicorn
import uvloop

from runsvc_client import TLS
from runsvc_gateway.app import Settings, create_app
from runsvc_gateway.http_protocol import JsonErrorsHttpToolsProtocol
from runsvc_gateway.inputs import DEFAULT_MAX_BODY_BYTES
from runsvc_observe.logging import configure_logging
from runsvc_observe.metrics import serve_metrics, url
from runsvc_observe.tracing import configure_tracing


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _positive(kind: type[float] | type[int]):  # type: ignore[no-untyped-def]
    def parse(value: str) -> float | int:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
        return number

    return parse


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="runsvc-gateway",
        description="The legacy admin HTTP contract over the runsvc gRPC RunService.",
    )
    parser.add_argument(
        "--grpc-target",
        type=_address,
        default=env("RUNSVC_GRPC_TARGET", "127.0.0.1:50051"),
        help="the gRPC server, HOST:PORT (env RUNSVC_GRPC_TARGET)",
    )
    parser.add_argument(
        "--http-addr",
        type=_address,
        default=env("RUNSVC_HTTP_ADDR", "127.0.0.1:8080"),
        help="where to listen, HOST:PORT; port 0 picks a free one (env RUNSVC_HTTP_ADDR)",
    )
    parser.add_argument(
        "--call-timeout",
        type=_positive(float),
        default=float(env("RUNSVC_GATEWAY_CALL_TIMEOUT", "10")),
        help="deadline of each unary gRPC call, seconds (default 10)",
    )
    parser.add_argument(
        "--watch-timeout",
        type=_positive(float),
        default=float(env("RUNSVC_GATEWAY_WATCH_TIMEOUT", "3600")),
        help="longest watch stream, seconds; clients resume with Last-Event-ID (default 3600)",
    )
    parser.add_argument(
        "--heartbeat",
        type=_positive(float),
        default=float(env("RUNSVC_GATEWAY_HEARTBEAT", "15")),
        help="seconds between keep-alive comments on idle watch streams (default 15)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive(int),
        default=int(env("RUNSVC_GATEWAY_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))),
        help=f"request body limit, larger bodies get 413 (default {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--grpc-ca",
        default=env("RUNSVC_GATEWAY_GRPC_CA"),
        help="CA bundle (PEM) to trust: connect to the gRPC server with TLS "
        "(env RUNSVC_GATEWAY_GRPC_CA)",
    )
    parser.add_argument(
        "--grpc-cert",
        default=env("RUNSVC_GATEWAY_GRPC_CERT"),
        help="client certificate chain (PEM) for mutual TLS (env RUNSVC_GATEWAY_GRPC_CERT)",
    )
    parser.add_argument(
        "--grpc-key",
        default=env("RUNSVC_GATEWAY_GRPC_KEY"),
        help="client private key (PEM) for mutual TLS (env RUNSVC_GATEWAY_GRPC_KEY)",
    )
    parser.add_argument(
        "--metrics-addr",
        type=_address,
        default=env("RUNSVC_METRICS_ADDR"),
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (env RUNSVC_METRICS_ADDR; "
        "default: off)",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=env("RUNSVC_GATEWAY_ACCESS_LOG", "1") not in ("0", "false", "no"),
        help="one log line per request, with its request id (default on; "
        "env RUNSVC_GATEWAY_ACCESS_LOG=0 turns it off)",
    )
    parser.add_argument(
        "--grpc-server-name",
        default=env("RUNSVC_GATEWAY_GRPC_SERVER_NAME"),
        help="name to check the server certificate against, if not the target's host",
    )
    return parser


def tls_from_args(args: argparse.Namespace) -> TLS | None:
    """TLS towards the gRPC server from the flags; ValueError with a clear
    message when they are incomplete or unreadable."""
    return TLS.from_files(args.grpc_ca, args.grpc_cert, args.grpc_key, args.grpc_server_name)


async def serve(args: argparse.Namespace, tls: TLS | None = None) -> None:
    grpc_host, grpc_port = args.grpc_target
    host, port = args.http_addr
    settings = Settings(
        grpc_target=f"{grpc_host}:{grpc_port}",
        call_timeout=args.call_timeout,
        watch_timeout=args.watch_timeout,
        heartbeat_seconds=args.heartbeat,
        max_body_bytes=args.max_body_bytes,
        tls=tls,
        metrics=args.metrics_addr is not None,
        access_log=args.access_log,
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that
    # say so, and accepted sockets inherit it (without it every keep-alive
    # response waits ~40 ms for a delayed ACK: headers and body are two writes).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound_port = sock.getsockname()[1]
    metrics_server = None
    if args.metrics_addr is not None:
        metrics_host, _ = args.metrics_addr
        metrics_server = serve_metrics(_joined(args.metrics_addr))
    config = uvicorn.Config(
        create_app(settings),
        # httptools parses HTTP/1.1 in C; uvicorn's default (h11, pure
        # Python) was most of the gateway's time per request.
        http=JsonErrorsHttpToolsProtocol,
        log_level=os.environ.get("RUNSVC_LOG_LEVEL", "info").lower(),
        # Our handler formats uvicorn's lines; ObserveMiddleware writes the
        # access line (with the request id).
        log_config=None,
        access_log=False,
        # Open watch streams must not hold up a shutdown for long.
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        # Supervisors and tests read this line to learn the port.
        print(f"runsvc-gateway listening on http://{shown}:{bound_port}", flush=True)
        if metrics_server is not None:
            print(f"runsvc-gateway metrics on {url(metrics_host, metrics_server.server_port)}")

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()


def _joined(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        tls = tls_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    try:
        configure_logging()
    except ValueError as exc:  # RUNSVC_LOG_FORMAT
        parser.error(str(exc))
    configure_tracing("runsvc-gateway")
    try:
        # uvloop: a faster event loop for the HTTP side and the gRPC channel alike.
        uvloop.run(serve(args, tls))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"runsvc-gateway: {exc.strerror}", file=sys.stderr)  # names the address
        return 1
    return 0
