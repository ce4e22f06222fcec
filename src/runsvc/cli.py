"""`runsvc`: dev, migrate, serve, worker, seed, token, tenant, audit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from runsvc import cli_tenant
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
    dev.add_argument(
        "--graph-emulator",
        action="store_true",
        help="serve the demo tenant from a Microsoft Graph emulator (the Graph TenantSource)",
    )

    commands.add_parser("migrate", help="apply database migrations (safe to run twice)")

    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.add_argument(
        "--grpc-addr", type=_address, default=os.environ.get("RUNSVC_GRPC_ADDR", DEFAULT_GRPC_ADDR)
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="server certificate (RUNSVC_TLS_CERT)")
    serve.add_argument("--tls-key", metavar="PEM", help="its private key (RUNSVC_TLS_KEY)")
    serve.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="require client certificates signed by this CA: mutual TLS (RUNSVC_TLS_CLIENT_CA)",
    )

    worker = commands.add_parser("worker", help="run Dramatiq worker processes")
    worker.add_argument("--processes", type=_positive, default=1)
    worker.add_argument("--threads", type=_positive, default=4)

    seed = commands.add_parser("seed", help="load tenants, policies and backup sets from JSON")
    seed.add_argument("file", type=Path, metavar="FILE.json")

    token = commands.add_parser("token", help="create, list and revoke API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="create a token and print it (only once)")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=["viewer", "operator"])
    grants = create.add_mutually_exclusive_group(required=True)
    grants.add_argument(
        "--tenant", action="append", dest="tenants", metavar="T", help="grant a tenant (repeat)"
    )
    grants.add_argument("--all-tenants", action="store_true", help="grant every tenant")
    token_commands.add_parser("list", help="list tokens (never their secrets)")
    revoke = token_commands.add_parser("revoke", help="revoke the active token of that name")
    revoke.add_argument("name")

    cli_tenant.add_parser(commands)

    audit = commands.add_parser("audit", help="show what callers did in a tenant, newest first")
    audit.add_argument("--tenant", required=True)
    audit.add_argument("--limit", type=_positive, default=100)
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

        return run_dev(
            args.data_dir, args.grpc_addr, args.http_addr, graph_emulator=args.graph_emulator
        )

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

        settings = settings.with_tls(args.tls_cert, args.tls_key, args.tls_client_ca)
        asyncio.run(serve(settings, args.grpc_addr))
        return 0

    if args.command == "token":
        return _token(settings, args)

    if args.command == "audit":
        return _audit(settings, args.tenant, args.limit)

    if args.command == "tenant":
        return cli_tenant.run(settings, args)

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
            # A stopping worker gives its runs back within the grace period;
            # Dramatiq waits a little longer for its threads, never minutes.
            "--worker-shutdown-timeout",
            str(int((settings.shutdown_grace_seconds + 2) * 1000)),
        ]
        # Runs are long: a process takes no more messages than it has
        # threads (Dramatiq's default is twice as many), so that a message
        # never waits in a busy process while another process idles.
        os.environ.setdefault("dramatiq_queue_prefetch", str(args.threads))
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


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from runsvc import tokens

    url = settings.database_url
    if args.token_command == "create":
        try:
            secret = tokens.create_token(
                url,
                name=args.name,
                role=args.role,
                tenants=None if args.all_tenants else args.tenants,
            )
        except tokens.TokenError as exc:
            print(f"runsvc token: {exc}", file=sys.stderr)
            return 1
        # The secret goes to stdout only, once; the hint goes to stderr so
        # that `TOKEN=$(runsvc token create ...)` captures just the token.
        print("store this token now; it cannot be shown again:", file=sys.stderr)
        print(secret, flush=True)
        return 0
    if args.token_command == "list":
        rows = [
            [
                t.name,
                t.role,
                t.grants,
                _when(t.created_at),
                _when(t.last_used_at),
                _when(t.revoked_at),
            ]
            for t in tokens.list_tokens(url)
        ]
        _print_table(["NAME", "ROLE", "TENANTS", "CREATED", "LAST_USED", "REVOKED"], rows)
        return 0
    if args.token_command == "revoke":
        if not tokens.revoke_token(url, args.name):
            print(f"runsvc token: no active token named {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.name}")
        return 0
    raise AssertionError(args.token_command)


def _audit(settings: Settings, tenant: str, limit: int) -> int:
    import psycopg

    from runsvc.store.auth import audit_list

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        events = audit_list(conn, tenant, limit=limit)
    rows = [
        [
            _when(e["occurred_at"]),
            e["action"],
            e["token_name"],
            e["tenant_external_id"],
            e["run_type"] or "-",
            str(e["run_id"] or "-"),
            "-" if e["reused"] is None else ("reused" if e["reused"] else "new"),
        ]
        for e in events
    ]
    _print_table(["TIME", "ACTION", "TOKEN", "TENANT", "RUN_TYPE", "RUN_ID", "RUN"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
