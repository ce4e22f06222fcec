"""Schemathesis runs the served description (the contract file unchanged in
its paths and schemas, plus the watch route and the error responses) against
the live gateway, with every check, positive and negative data: zero
failures means no 5xx, no undocumented status, no body that breaks the
schema, no bad input accepted and no good input refused. The hooks in
schemathesis_hooks.py narrow generated ids to the SPEC's limits, which the
contract's schemas do not state (see there)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.gateway.conftest import auth_headers

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = os.environ.get("RUNSVC_TEST_SCHEMATHESIS_EXAMPLES", "60")


def test_schemathesis_finds_nothing(gateway, tmp_path):
    # In front of the stack with a worker: stateful runs watch the runs they
    # start, and those streams end because the runs finish.
    headers = [f"-H{name}: {value}" for name, value in auth_headers(gateway.stack).items()]
    args = [
        str(SCHEMATHESIS),
        "run",
        f"{gateway.url}/admin/openapi.yaml",
        "--checks",
        "all",
        "--mode",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        # One worker: Python 3.11.7's ast.parse is not thread-safe (gh-106905,
        # "AST constructor recursion depth mismatch"), and hypothesis calls it
        # while describing strategies in the coverage phase.
        "--workers",
        "1",
        "--request-timeout",
        "15",
        "--generation-database",
        "none",
        "--continue-on-failure",
        "--no-color",
        *headers,
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.gateway.schemathesis_hooks",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    done = subprocess.run(args, capture_output=True, text=True, timeout=280, cwd=tmp_path, env=env)
    output = done.stdout + done.stderr
    print(output[-6000:])
    assert done.returncode == 0, output[-20000:]
    summary = output[output.rindex("SUMMARY") :]
    assert "Failures:" not in summary and "Errors:" not in summary, summary
    assert re.search(r"Test cases:\s+(\d+) generated, \1 passed", summary), summary
