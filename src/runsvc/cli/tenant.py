"""`runsvc tenant add|list|remove`: the tenants and their Entra tenants."""

from __future__ import annotations

import argparse
import sys

from runsvc.cli.admin import _print_table, _when
from runsvc.config import Settings


def register(commands: argparse._SubParsersAction) -> None:
    tenant = commands.add_parser(
        "tenant", help="add, list and remove tenants (and their Entra tenant)"
    )
    actions = tenant.add_subparsers(dest="tenant_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a tenant, or set the Entra tenant of one")
    add.add_argument("tenant", help="the tenant's external id")
    add.add_argument(
        "--graph-tenant-id",
        metavar="ID",
        help="its customer's Entra tenant (directory id or verified domain), for the Graph source",
    )
    actions.add_parser("list", help="list tenants with their Entra tenant and what they hold")
    remove = actions.add_parser("remove", help="remove a tenant")
    remove.add_argument("tenant")
    remove.add_argument(
        "--purge", action="store_true", help="also delete its backup sets and snapshots"
    )
    tenant.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from runsvc import tenants

    url = Settings.from_env().database_url
    try:
        if args.tenant_command == "add":
            created = tenants.add_tenant(url, args.tenant, args.graph_tenant_id)
            print(f"{'added' if created else 'updated'} {args.tenant}")
            return 0
        if args.tenant_command == "list":
            rows = [
                [
                    t.external_id,
                    t.graph_tenant_id or "-",
                    str(t.active_runs),
                    str(t.backup_sets),
                    str(t.snapshots),
                    _when(t.created_at),
                ]
                for t in tenants.list_tenants(url)
            ]
            _print_table(
                ["TENANT", "GRAPH_TENANT_ID", "ACTIVE_RUNS", "BACKUP_SETS", "SNAPSHOTS", "CREATED"],
                rows,
            )
            return 0
        if args.tenant_command == "remove":
            removed = tenants.remove_tenant(url, args.tenant, purge=args.purge)
            print(
                f"removed {args.tenant} ({removed.backup_sets} backup set(s), "
                f"{removed.snapshots} snapshot(s))"
            )
            return 0
    except tenants.TenantError as exc:
        print(f"runsvc tenant: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.tenant_command)
