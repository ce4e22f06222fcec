"""`npm test` of the TypeScript client against the live stack: starts a run
and watches it to its terminal state, typed errors, deadlines."""

from __future__ import annotations

import re
import subprocess

from tests.clients.node import TS_DIR, npm_ci, run_env


def test_npm_test_against_the_live_server(stack, tenant):
    npm_ci()
    result = subprocess.run(
        ["npm", "test"],
        cwd=TS_DIR,
        env=run_env(stack, tenant.external_id),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    counts = dict(re.findall(r"^\S (tests|pass|fail|skipped) (\d+)$", output, re.MULTILINE))
    assert counts == {"tests": "5", "pass": "5", "fail": "0", "skipped": "0"}, output[-3000:]
