"""`runsvc tenant add|list|remove` and the seed file's graphTenantId, as an
operator uses them to say which Entra tenant backs each tenant."""

from __future__ import annotations

import uuid

from runsvc.seed import SeedError, seed
from tests.cli.test_migrate_and_seed import run_cli
from tests.support.db import query_one
from tests.support.seeding import seed_tenant


def graph_tenant_of(database_url: str, tenant: str) -> str | None:
    return query_one(
        database_url, "SELECT graph_tenant_id FROM tenants WHERE external_id = %s", tenant
    )[0]


def listed(database_url: str) -> dict[str, list[str]]:
    result = run_cli(database_url, "tenant", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "TENANT", "GRAPH_TENANT_ID", "ACTIVE_RUNS", "BACKUP_SETS", "SNAPSHOTS", "CREATED"
    ]  # fmt: skip
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_add_list_and_remove_a_graph_tenant(database_url):
    name = f"contoso-{uuid.uuid4().hex[:8]}"
    entra = str(uuid.uuid4())
    added = run_cli(database_url, "tenant", "add", name, "--graph-tenant-id", entra.upper())
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"added {name}"
    assert graph_tenant_of(database_url, name) == entra  # normalised to lower case
    assert listed(database_url)[name][:4] == [entra, "0", "0", "0"]

    domain = f"{name}.onmicrosoft.com"
    again = run_cli(database_url, "tenant", "add", name, "--graph-tenant-id", domain)
    assert again.returncode == 0 and again.stdout.strip() == f"updated {name}"
    assert graph_tenant_of(database_url, name) == domain
    # Adding without an id keeps the mapping.
    assert run_cli(database_url, "tenant", "add", name).returncode == 0
    assert graph_tenant_of(database_url, name) == domain

    removed = run_cli(database_url, "tenant", "remove", name)
    assert removed.returncode == 0, removed.stderr
    assert name not in listed(database_url)


def test_bad_ids_and_taken_entra_tenants_are_refused(database_url):
    name = f"fabrikam-{uuid.uuid4().hex[:8]}"
    bad = run_cli(database_url, "tenant", "add", name, "--graph-tenant-id", "not a tenant")
    assert bad.returncode == 1 and "Entra tenant id" in bad.stderr
    entra = str(uuid.uuid4())
    assert run_cli(database_url, "tenant", "add", name, "--graph-tenant-id", entra).returncode == 0
    taken = run_cli(database_url, "tenant", "add", f"{name}-2", "--graph-tenant-id", entra)
    assert taken.returncode == 1 and "already belongs to another tenant" in taken.stderr
    assert query_one(
        database_url, "SELECT count(*) FROM tenants WHERE external_id = %s", f"{name}-2"
    ) == (0,)
    missing = run_cli(database_url, "tenant", "remove", f"nobody-{uuid.uuid4().hex[:8]}")
    assert missing.returncode == 1 and "no tenant" in missing.stderr


def test_remove_keeps_backups_unless_purged(database_url):
    tenant = seed_tenant(database_url)  # has a backup set
    kept = run_cli(database_url, "tenant", "remove", tenant.external_id)
    assert kept.returncode == 1 and "--purge" in kept.stderr
    assert graph_tenant_of(database_url, tenant.external_id) is None  # still there
    purged = run_cli(database_url, "tenant", "remove", tenant.external_id, "--purge")
    assert purged.returncode == 0, purged.stderr
    assert "1 backup set(s)" in purged.stdout
    assert query_one(
        database_url, "SELECT count(*) FROM tenants WHERE external_id = %s", tenant.external_id
    ) == (0,)


def test_seed_file_maps_tenants_to_entra(database_url):
    name = f"seeded-{uuid.uuid4().hex[:8]}"
    entra = str(uuid.uuid4())
    seed(database_url, {"tenants": [{"externalId": name, "graphTenantId": entra}]})
    assert graph_tenant_of(database_url, name) == entra
    try:
        seed(database_url, {"tenants": [{"externalId": name, "graphTenantId": "x y"}]})
    except SeedError as exc:
        assert str(exc).startswith("$.tenants[0].graphTenantId:")
    else:
        raise AssertionError("a bad graphTenantId was accepted")
