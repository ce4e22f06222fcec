"""`runsvc migrate` and `runsvc seed` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from runsvc.seed import parse_seed
from runsvc.store.migrate import available_migrations
from tests.support.database import fresh_database
from tests.support.db import query_all, query_one
from tests.support.processes import runsvc


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNSVC_DATABASE_URL": database_url}
    return subprocess.run(runsvc(*args), env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def empty_database(admin_database_url):
    with fresh_database(admin_database_url, prefix="runsvc_cli", migrated=False) as url:
        yield url


def test_migrate_applies_once_and_is_safe_to_repeat(empty_database):
    first = run_cli(empty_database, "migrate")
    assert first.returncode == 0, first.stderr
    shipped = [m.version for m in available_migrations()]
    assert f"applied {len(shipped)} migration(s)" in first.stdout
    second = run_cli(empty_database, "migrate")
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    versions = [
        v for (v,) in query_all(empty_database, "SELECT version FROM schema_migrations ORDER BY 1")
    ]
    assert versions == shipped


def test_migrate_without_database_url_says_so():
    env = {k: v for k, v in os.environ.items() if k != "RUNSVC_DATABASE_URL"}
    result = subprocess.run(runsvc("migrate"), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "RUNSVC_DATABASE_URL is not set" in result.stderr


def test_seed_loads_the_demo_file_idempotently(database_url, tmp_path):
    from runsvc.dev import DEMO_SEED

    for _ in range(2):
        result = run_cli(database_url, "seed", str(DEMO_SEED))
        assert result.returncode == 0, result.stderr
        assert "seeded 1 tenant(s), 6 policies, 2 backup set(s)" in result.stdout
    policies = query_one(
        database_url,
        "SELECT count(*) FROM live_policies lp JOIN tenants t ON t.id = lp.tenant_id "
        "WHERE t.external_id = 'demo-tenant'",
    )[0]
    assert policies == 6


@pytest.mark.parametrize(
    "document, message",
    [
        ({}, "$: missing tenants"),
        ({"tenants": {}}, "$.tenants: must be an array"),
        ({"tenants": [{"externalId": ""}]}, "$.tenants[0].externalId: must be a non-empty"),
        (
            {"tenants": [{"externalId": "a", "policies": [{"id": "p"}]}]},
            "$.tenants[0].policies[0]: missing displayName, payload, type",
        ),
        ({"tenants": [{"externalId": "a", "extra": 1}]}, "$.tenants[0]: unknown extra"),
        (
            {
                "tenants": [
                    {
                        "externalId": "a",
                        "policies": [{"id": "p", "type": "t", "displayName": "d", "payload": []}],
                    }
                ]
            },
            "$.tenants[0].policies[0].payload: must be an object",
        ),
    ],
)
def test_seed_rejects_bad_files_with_a_path_and_loads_nothing(
    document, message, database_url, tmp_path
):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(document))
    tenants_before = query_one(database_url, "SELECT count(*) FROM tenants")[0]
    result = run_cli(database_url, "seed", str(path))
    assert result.returncode == 1
    assert message in result.stderr
    assert query_one(database_url, "SELECT count(*) FROM tenants")[0] == tenants_before


def test_seed_of_a_non_json_file_is_a_clear_error(database_url, tmp_path):
    path = tmp_path / "seed.json"
    path.write_text("{not json")
    result = run_cli(database_url, "seed", str(path))
    assert result.returncode == 1
    assert "not valid JSON" in result.stderr


def test_seed_format_parses_backup_sets():
    parsed = parse_seed(
        {"tenants": [{"externalId": "a", "backupSets": [{"id": "bs", "name": "Backup"}]}]}
    )
    assert parsed == [("a", [], [("bs", "Backup")])]
