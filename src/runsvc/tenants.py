"""Tenants as operators manage them: `runsvc tenant add|list|remove` and the
seed file's `graphTenantId`. A tenant served from Microsoft Graph names its
customer's Entra tenant (the directory id, or a verified domain)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from runsvc.store import tenants as store
from runsvc.store.tenants import GraphTenantTaken, TenantRow
from runsvc.validation import InvalidArgument, check_tenant

# A directory (tenant) id is a GUID; Entra also accepts a verified domain.
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
GRAPH_TENANT_ID = re.compile(rf"{_GUID}|{_LABEL}(?:\.{_LABEL})+")

__all__ = [
    "TenantError",
    "TenantRow",
    "add_tenant",
    "check_graph_tenant_id",
    "list_tenants",
    "remove_tenant",
]


class TenantError(Exception):
    """An admin request that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Removed:
    backup_sets: int
    snapshots: int


def check_graph_tenant_id(value: str) -> str:
    """The Entra tenant id, normalised (lower case); ValueError says why not."""
    if len(value) > 253 or not GRAPH_TENANT_ID.fullmatch(value):
        raise ValueError(
            "must be an Entra tenant id (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47) "
            "or a verified domain (contoso.onmicrosoft.com)"
        )
    return value.lower()


def _check_name(tenant: str) -> None:
    try:
        check_tenant(tenant, field="tenant")
    except InvalidArgument as exc:
        raise TenantError(str(exc)) from None


def add_tenant(database_url: str, tenant: str, graph_tenant_id: str | None) -> bool:
    """Creates the tenant or sets its Entra tenant; True when it is new."""
    _check_name(tenant)
    if graph_tenant_id is not None:
        try:
            graph_tenant_id = check_graph_tenant_id(graph_tenant_id)
        except ValueError as exc:
            raise TenantError(f"graph tenant id: {exc}") from None
    with psycopg.connect(database_url, autocommit=True) as conn:
        try:
            return store.tenant_graph_set(conn, tenant, graph_tenant_id)
        except GraphTenantTaken:
            raise TenantError(
                f"Entra tenant {graph_tenant_id} already belongs to another tenant"
            ) from None


def list_tenants(database_url: str) -> list[TenantRow]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return store.tenant_list(conn)


def remove_tenant(database_url: str, tenant: str, *, purge: bool) -> Removed:
    """Deletes the tenant; with what it holds (backup sets, snapshots) only
    when `purge` says so, and never while it has queued or running runs."""
    _check_name(tenant)
    with psycopg.connect(database_url) as conn, conn.transaction():
        usage = store.tenant_usage(conn, tenant)
        if usage is None:
            raise TenantError(f"no tenant {tenant!r}")
        if usage.active_runs:
            raise TenantError(
                f"{tenant} has {usage.active_runs} queued or running run(s); "
                "let them finish (or cancel them) first"
            )
        if (usage.backup_sets or usage.snapshots) and not purge:
            raise TenantError(
                f"{tenant} holds {usage.backup_sets} backup set(s) and {usage.snapshots} "
                "snapshot(s); --purge deletes them with it"
            )
        store.tenant_delete(conn, usage.id)
    return Removed(usage.backup_sets, usage.snapshots)
