"""scripts/check_breaking.py (`make breaking`, part of `make test`) in a
throwaway git repository holding a copy of the buf workspace: a renumbered
field, a changed type or a removed RPC fails, on a branch (against the
merge-base with main) and on main itself (against HEAD~1); an additive
change passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PROTO = Path("proto/tenantpilot/runs/v1/runs.proto")

CHANGES = {
    "renumbered field": (
        "  optional string payload_hash = 2 [",
        "  optional string payload_hash = 12 [",
    ),
    "changed type": ("  int64 version = 10;", "  string version = 10;"),
    "removed rpc": ("  rpc GetRun(GetRunRequest)", "  rpc GetRunGone(GetRunRequest)"),
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name in ("proto", "third_party"):
        shutil.copytree(PROJECT_ROOT / name, root / name)
    shutil.copy(PROJECT_ROOT / "buf.yaml", root / "buf.yaml")
    (root / "scripts").mkdir()
    shutil.copy(PROJECT_ROOT / "scripts" / "check_breaking.py", root / "scripts")
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "contract")
    return root


def check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/check_breaking.py"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def edit(repo: Path, old: str, new: str) -> None:
    path = repo / PROTO
    text = path.read_text()
    assert text.count(old) == 1, old
    if "rpc GetRunGone" in new:  # drop the whole RPC, not just rename it
        start = text.index("  // GetRun returns")
        end = text.index("  // WatchRun sends")
        path.write_text(text[:start] + text[end:])
        return
    path.write_text(text.replace(old, new))


def test_unchanged_tree_on_a_single_commit_main_is_skipped(repo):
    result = check(repo)
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stdout


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_breaking_change_on_a_branch_fails(repo, change):
    git(repo, "switch", "--quiet", "-c", "feature")
    edit(repo, *CHANGES[change])
    uncommitted = check(repo)  # the working tree counts
    git(repo, "commit", "--quiet", "-am", change)
    committed = check(repo)
    for result in (uncommitted, committed):
        assert result.returncode == 1, result.stdout + result.stderr
        assert "merge-base of HEAD with main" in result.stderr
    assert "runs.proto" in committed.stdout + committed.stderr


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_breaking_change_landed_on_main_fails_against_head_parent(repo, change):
    edit(repo, *CHANGES[change])
    git(repo, "commit", "--quiet", "-am", change)
    result = check(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "HEAD~1 (HEAD is main)" in result.stderr


def test_additive_change_passes(repo):
    git(repo, "switch", "--quiet", "-c", "feature")
    edit(
        repo,
        "  int64 version = 10;\n",
        "  int64 version = 10;\n  // Added later.\n  string note = 11;\n",
    )
    git(repo, "commit", "--quiet", "-am", "add a field")
    result = check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compatible with" in result.stdout
