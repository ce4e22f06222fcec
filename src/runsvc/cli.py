"""`runsvc`: dev, migrate, serve, worker, seed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from runsvc.config import ConfigError, Settings

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"
DEFAULT_HTTP_ADDR = "127.0.0.1:8080"


def _address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return value


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runsvc",
        description="Run orchestration for TenantPilot. Production commands read "
        "RUNSVC_DATABASE_URL and RUNSVC_BROKER_URL (default: the database).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run everything locally with an embedded Postgres")
    dev.add_argument("--data-dir", type=Path, default=Path(".runsvc"), help="default: .runsvc/")
    dev.add_argument("--grpc-addr", type=_address, default=DEFAULT_GRPC_ADDR)
    dev.add_argument("--http-addr", type=_address, default=DEFAULT_HTTP_ADDR)

    commands.add_parser("migrate", help="apply database migrations (safe to run twice)")

    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.add_argument(
        "--grpc-addr", type=_address, default=os.environ.get("RUNSVC_GRPC_ADDR", DEFAULT_GRPC_ADDR)
    )

    worker = commands.add_parser("worker", help="run Dramatiq worker processes")
    worker.add_argument("--processes", type=_positive, default=1)
    worker.add_argument("--threads", type=_positive, default=4)

    seed = commands.add_parser("seed", help="load tenants, policies and backup sets from JSON")
    seed.add_argument("file", type=Path, metavar="FILE.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("RUNSVC_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"runsvc: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "dev":
        from runsvc.dev import run_dev

        return run_dev(args.data_dir, args.grpc_addr, args.http_addr)

    settings = Settings.from_env()
    if args.command == "migrate":
        from runsvc.broker import prepare_broker
        from runsvc.store.migrate import migrate

        applied = migrate(settings.database_url)
        prepare_broker(settings.broker_url)
        print(f"applied {len(applied)} migration(s)" if applied else "database is up to date")
        return 0

    if args.command == "serve":
        from runsvc.server.app import serve

        asyncio.run(serve(settings, args.grpc_addr))
        return 0

    if args.command == "worker":
        from runsvc.broker import prepare_broker

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
        ]
        os.execv(sys.executable, dramatiq_args)

    if args.command == "seed":
        from runsvc.seed import SeedError, load_seed_file, seed

        try:
            summary = seed(settings.database_url, load_seed_file(args.file))
        except SeedError as exc:
            print(f"runsvc seed: {exc}", file=sys.stderr)
            return 1
        print(
            f"seeded {summary.tenants} tenant(s), {summary.policies} policies, "
            f"{summary.backup_sets} backup set(s)"
        )
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
