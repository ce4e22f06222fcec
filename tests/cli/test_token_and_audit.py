"""`runsvc token create|list|revoke` and `runsvc audit` as an operator runs
them, against a real server."""

from __future__ import annotations

import re
import time

import grpc
import pytest

from tests.cli.test_migrate_and_seed import run_cli
from tests.support.db import query_one
from tests.support.runs import start
from tests.support.seeding import seed_tenant

TOKEN = re.compile(r"^rsvc_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$")


def create(database_url: str, name: str, *args: str) -> str:
    result = run_cli(database_url, "token", "create", "--name", name, *args)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert TOKEN.match(token), result.stdout
    assert "cannot be shown again" in result.stderr
    return token


def test_token_lifecycle_from_the_command_line(stack, database_url):
    tenant = seed_tenant(database_url)
    name = f"cli-{tenant.external_id}"
    token = create(
        database_url, name, "--role", "operator", "--tenant", tenant.external_id, "--tenant", "x"
    )
    stub = stack.stub(token=token)
    run = start(stub, tenant.external_id, "snapshot_capture", target="cli").run

    listed = run_cli(database_url, "token", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(li for li in listed.stdout.splitlines() if li.startswith(name + " "))
    fields = line.split()
    assert fields[1:3] == ["operator", f"{tenant.external_id},x"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields[3])  # created
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields[4])  # last used
    assert fields[5] == "-"  # not revoked
    assert listed.stdout.splitlines()[0].split() == [
        "NAME", "ROLE", "TENANTS", "CREATED", "LAST_USED", "REVOKED"
    ]  # fmt: skip
    assert token not in listed.stdout and token.rsplit("_", 1)[1] not in listed.stdout

    audit = run_cli(database_url, "audit", "--tenant", tenant.external_id)
    assert audit.returncode == 0, audit.stderr
    rows = audit.stdout.splitlines()
    assert rows[0].split() == ["TIME", "ACTION", "TOKEN", "TENANT", "RUN_TYPE", "RUN_ID", "RUN"]
    assert rows[1].split()[1:] == [
        "run.start", name, tenant.external_id, "snapshot_capture", run.id, "new"
    ]  # fmt: skip

    revoked = run_cli(database_url, "token", "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    again = run_cli(database_url, "token", "revoke", name)
    assert again.returncode == 1 and "no active token" in again.stderr
    # The name is free again; the old token stays dead.
    create(database_url, name, "--role", "viewer", "--all-tenants")
    listed = run_cli(database_url, "token", "list").stdout
    assert [li.split()[1] for li in listed.splitlines() if li.startswith(name + " ")] == [
        "viewer",
        "operator",
    ]
    old_stub = stack.stub(token=token)
    with pytest.raises(grpc.RpcError) as error:
        for _ in range(100):  # the server trusts its cache for a few seconds
            start(old_stub, tenant.external_id, "snapshot_capture", target="cli-2")
            time.sleep(0.1)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "args, message",
    [
        (["--role", "admin", "--all-tenants"], "invalid choice"),
        (["--role", "viewer"], "one of the arguments --tenant --all-tenants is required"),
        (["--role", "viewer", "--tenant", "a", "--all-tenants"], "not allowed with"),
        (["--role", "viewer", "--tenant", "a\x01b"], "control characters"),
        (["--role", "viewer", "--tenant", "t" * 129], "at most 128"),
    ],
)
def test_token_create_rejects_bad_requests(args, message, database_url):
    result = run_cli(database_url, "token", "create", "--name", "bad-request", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert query_one(
        database_url, "SELECT count(*) FROM api_tokens WHERE name = 'bad-request'"
    ) == (0,)


def test_token_names_are_unique_and_sane(database_url):
    create(database_url, "unique-name", "--role", "viewer", "--all-tenants")
    twice = run_cli(
        database_url, "token", "create", "--name", "unique-name", "--role", "viewer",
        "--all-tenants",
    )  # fmt: skip
    assert twice.returncode == 1 and "exists" in twice.stderr
    odd = run_cli(
        database_url, "token", "create", "--name", "has space", "--role", "viewer",
        "--all-tenants",
    )  # fmt: skip
    assert odd.returncode == 1 and "token name" in odd.stderr


def test_audit_of_a_quiet_tenant_prints_only_the_header(database_url):
    result = run_cli(database_url, "audit", "--tenant", "nobody-here")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
