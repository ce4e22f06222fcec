"""The TypeScript client's toolchain as the tests use it: Node and npm from
PATH, dependencies installed by `npm ci` from package-lock.json."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.conftest import PROJECT_ROOT

TS_DIR = PROJECT_ROOT / "clients" / "typescript"


def npm_ci() -> None:
    """Installs clients/typescript's dependencies unless `make` already did."""
    lock = TS_DIR / "package-lock.json"
    installed = TS_DIR / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    assert shutil.which("npm"), "npm (Node 20+) is needed for the TypeScript client"
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TS_DIR, check=True, timeout=600)


def run_env(stack, tenant: str, idle_stack=None) -> dict[str, str]:
    """Where `npm test` finds the live server (and, for reuse, a server
    whose runs stay queued; both stacks share the database and its tokens)."""
    idle = {"RUNSVC_IDLE_GRPC_TARGET": idle_stack.target} if idle_stack is not None else {}
    return {
        **os.environ,
        **idle,
        "RUNSVC_GRPC_TARGET": stack.target,
        "RUNSVC_TENANT": tenant,
        "RUNSVC_TOKEN": stack.token or "",
        "RUNSVC_TOKEN_NAME": stack.token_name,
    }
