"""`runsvc-gateway --grpc-target HOST:PORT --http-addr HOST:PORT`: serves the
app with uvicorn and prints one ready line with the real address (also
with port 0)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket

import uvicorn

from runsvc_client import TLS
from runsvc_gateway.app import Settings, create_app
from runsvc_gateway.inputs import DEFAULT_MAX_BODY_BYTES


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
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that
    # say so, and accepted sockets inherit it (without it every keep-alive
    # response waits ~40 ms for a delayed ACK: headers and body are two writes).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        log_level=os.environ.get("RUNSVC_LOG_LEVEL", "info").lower(),
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

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        tls = tls_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    logging.basicConfig(
        level=os.environ.get("RUNSVC_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(args, tls))
    return 0
