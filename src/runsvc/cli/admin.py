"""The admin commands, straight on the database: `runsvc migrate`, `seed`,
`token` and `audit`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from runsvc.cli.args import positive
from runsvc.config import Settings


def register(commands: argparse._SubParsersAction) -> None:
    migrate = commands.add_parser("migrate", help="apply database migrations (safe to run twice)")
    migrate.set_defaults(handler=_migrate)

    seed = commands.add_parser("seed", help="load tenants, policies and backup sets from JSON")
    seed.add_argument("file", type=Path, metavar="FILE.json")
    seed.set_defaults(handler=_seed)

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
    token.set_defaults(handler=_token)

    audit = commands.add_parser("audit", help="show what callers did in a tenant, newest first")
    audit.add_argument("--tenant", required=True)
    audit.add_argument("--limit", type=positive, default=100)
    audit.set_defaults(handler=_audit)


def _migrate(args: argparse.Namespace) -> int:
    from runsvc.broker import prepare_broker
    from runsvc.store.migrate import migrate

    settings = Settings.from_env()
    applied = migrate(settings.database_url)
    prepare_broker(settings.broker_url)
    print(f"applied {len(applied)} migration(s)" if applied else "database is up to date")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from runsvc.seed import SeedError, load_seed_file, seed

    settings = Settings.from_env()
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


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _token(args: argparse.Namespace) -> int:
    from runsvc import tokens

    url = Settings.from_env().database_url
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


def _audit(args: argparse.Namespace) -> int:
    import psycopg

    from runsvc.store.auth import audit_list

    with psycopg.connect(Settings.from_env().database_url, autocommit=True) as conn:
        events = audit_list(conn, args.tenant, limit=args.limit)
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
