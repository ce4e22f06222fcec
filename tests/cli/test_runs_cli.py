"""`runsvc runs ...` as an operator uses it: in a real terminal (tmux: the
progress bar moves and ends with the final status) and with --json (the
HTTP contract's fields), over gRPC only (no database settings at all)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid

import pytest

from tests.support.processes import runsvc
from tests.support.seeding import seed_tenant

TMUX = shutil.which("tmux")


def cli_env(stack, tenant: str | None) -> dict[str, str]:
    """What `source .runsvc/dev.env` gives a shell: no database URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSVC_")}
    env.update(RUNSVC_GRPC_TARGET=stack.target, RUNSVC_TOKEN=stack.token or "")
    if tenant is not None:
        env["RUNSVC_TENANT"] = tenant
    return env


def cli(stack, tenant: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        runsvc("runs", *args),
        env=cli_env(stack, tenant),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> dict:
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


@pytest.fixture
def slow_stack(make_stack):
    slow = make_stack(
        RUNSVC_TENANT_SOURCE="tests.support.scripted_source:create",
        RUNSVC_TEST_SOURCE_DELAY="0.02",
        RUNSVC_BATCH_SIZE="10",
        RUNSVC_FLUSH_SECONDS="0.2",
    )
    slow.start_server()
    slow.start_worker()
    return slow


def test_watch_draws_a_moving_bar_in_a_terminal(slow_stack, database_url, tmp_path):
    assert TMUX, "tmux is needed for this test (.ci/run installs it)"
    tenant = seed_tenant(database_url, policies=150)
    socket = f"runsvc-test-{uuid.uuid4().hex[:8]}"
    command = " ".join(shlex.quote(part) for part in runsvc("runs", "start", "snapshot_capture"))
    script = tmp_path / "watch.sh"
    script.write_text(f"{command} --watch; echo EXIT=$?; sleep 600\n")
    env_args = [
        f"-e{key}={value}"
        for key, value in cli_env(slow_stack, tenant.external_id).items()
        if key.startswith(("RUNSVC_", "PATH", "PYTHONPATH", "HOME"))
    ]
    tmux = [TMUX, "-L", socket]
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "cli", "-x", "120", "-y", "20", *env_args,
         "bash", str(script)],
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )  # fmt: skip
    try:
        frames: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "cli"], capture_output=True, text=True
            ).stdout
            if not frames or screen != frames[-1]:
                frames.append(screen)
            if "EXIT=" in screen:
                break
            time.sleep(0.1)
        final = frames[-1]
        assert "EXIT=0" in final, final
        assert re.search(r"^succeeded: 150 succeeded, 0 failed of 150 in \d", final, re.M), final
        progress = [int(m[1]) for frame in frames for m in [re.search(r"(\d+)/150", frame)] if m]
        # The bar moved: several counts between the first and the last.
        assert len(set(progress)) >= 3 and progress == sorted(progress), progress
        assert 0 < min(progress) < 150 or progress[0] == 0, progress
        assert any("items/s" in frame and "eta" in frame for frame in frames), frames[-1]
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)


def test_json_output_follows_the_http_contract(stack, tenant):
    tid = tenant.external_id
    started = as_json(cli(stack, tid, "start", "snapshot_capture", "--json"))
    assert set(started) == {"reused", "run"} and started["reused"] is False
    run = started["run"]
    watched = cli(stack, tid, "watch", "snapshot_capture", run["id"], "--json")
    assert watched.returncode == 0, watched.stderr
    states = [json.loads(line) for line in watched.stdout.splitlines()]
    assert states[-1]["status"] == "succeeded" and states[-1]["id"] == run["id"]
    assert states[-1]["counts"] == {"total": 5, "succeeded": 5, "failed": 0}
    assert set(states[-1]) >= {"tenantExternalId", "createdAt", "safeError", "retryOfRunId"}
    got = as_json(cli(stack, tid, "get", "snapshot_capture", run["id"], "--json"))
    assert got == states[-1]
    listed = as_json(cli(stack, tid, "list", "--json", "--type", "snapshot_capture"))
    assert [r["id"] for r in listed["runs"]] == [run["id"]]
    items = as_json(cli(stack, tid, "items", "snapshot_capture", run["id"], "--json"))
    assert [i["itemId"] for i in items["items"]] == tenant.policy_ids
    assert {i["outcome"] for i in items["items"]} == {"succeeded"}
    assert set(items["items"][0]) == {
        "itemId",
        "position",
        "outcome",
        "errorCode",
        "finishedAt",
        "detail",
    }


def test_exit_codes_say_how_the_run_ended(stack, tenant):
    tid = tenant.external_id
    partial = cli(
        stack, tid, "start", "backup_set_add_policies", "--target", tenant.backup_set_id,
        "--item", tenant.policy_ids[0], "--item", "nope", "--watch",
    )  # fmt: skip
    assert partial.returncode == 3, partial.stdout + partial.stderr
    assert "partial (ITEMS_FAILED): 1 succeeded, 1 failed of 2" in partial.stdout
    run_id = re.search(r"started ([0-9a-f-]{36})", partial.stdout)[1]
    failed = cli(stack, tid, "retry", "backup_set_add_policies", run_id, "--watch")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "failed (ITEMS_FAILED): 0 succeeded, 1 failed of 1" in failed.stdout
    table = cli(stack, tid, "items", "backup_set_add_policies", run_id, "--outcome", "failed")
    assert table.returncode == 0 and "POLICY_NOT_FOUND" in table.stdout and "nope" in table.stdout
    refused = cli(stack, tid, "cancel", "backup_set_add_policies", run_id)
    assert refused.returncode == 4 and "FAILED_PRECONDITION" in refused.stderr


def test_cancel_and_list_a_queued_run(idle_stack, tenant):
    tid = tenant.external_id
    run = as_json(cli(idle_stack, tid, "start", "snapshot_capture", "--item", "a", "--json"))
    cancelled = as_json(
        cli(idle_stack, tid, "cancel", "snapshot_capture", run["run"]["id"], "--json")
    )
    assert cancelled["status"] == "failed" and cancelled["safeError"]["code"] == "CANCELLED"
    table = cli(idle_stack, tid, "list", "--status", "failed")
    assert (
        table.returncode == 0 and run["run"]["id"] in table.stdout and "CANCELLED" in table.stdout
    )


def test_settings_errors(stack, database_url):
    no_tenant = cli(stack, None, "list")
    assert no_tenant.returncode == 2 and "RUNSVC_TENANT" in no_tenant.stderr
    tenant = seed_tenant(database_url).external_id
    nowhere = cli(stack, tenant, "list", "--grpc-target", "127.0.0.1:1", "--timeout", "2")
    assert nowhere.returncode == 4 and "UNAVAILABLE" in nowhere.stderr
    bad_token = cli(stack, tenant, "list", "--token", "rsvc_0123456789abcdef_nope")
    assert bad_token.returncode == 4 and "UNAUTHENTICATED" in bad_token.stderr
    usage = cli(stack, tenant, "watch", "no_such_type", str(uuid.uuid4()))
    assert usage.returncode == 2
