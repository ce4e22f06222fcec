"""README's "Calling from Python / TypeScript / with grpcurl" snippets are the
example files, word for word, and each runs against the live stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.node import TS_DIR, npm_ci, run_env
from tests.conftest import PROJECT_ROOT
from tests.support.grpcurl import parse_stream

EXAMPLES = {
    "Calling from Python": PROJECT_ROOT / "examples" / "start_and_watch.py",
    "Calling from TypeScript": TS_DIR / "examples" / "start-and-watch.ts",
    "Calling with grpcurl": PROJECT_ROOT / "examples" / "grpcurl.sh",
}


def readme_snippet(heading: str) -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = re.split(r"\n##+ ", readme.split(f"### {heading}\n", 1)[1], maxsplit=1)[0]
    blocks = re.findall(r"^```\w+\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"{heading}: expected one code block"
    return blocks[0]


@pytest.mark.parametrize("heading", EXAMPLES)
def test_readme_snippet_is_the_example_file(heading):
    assert readme_snippet(heading) == EXAMPLES[heading].read_text()


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_python_example_runs(stack, tenant):
    out = run(
        [sys.executable, str(EXAMPLES["Calling from Python"])],
        PROJECT_ROOT,
        run_env(stack, tenant.external_id),
    )
    assert re.search(r"^run [0-9a-f-]{36} \(reused: False\)$", out, re.MULTILINE), out
    assert out.splitlines()[-2] == f"RUN_STATUS_SUCCEEDED {len(tenant.policy_ids)}/5", out
    rejected = out.splitlines()[-1]
    assert rejected.startswith("rejected: run_type: must be one of backup_set_add_policies, "), out
    assert rejected.count("run_type") == 1, rejected  # the field is named once


def test_typescript_example_runs(stack, tenant):
    npm_ci()
    out = run(
        ["node", "--import", "tsx", "examples/start-and-watch.ts"],
        TS_DIR,
        run_env(stack, tenant.external_id),
    )
    assert re.search(r"^run [0-9a-f-]{36} \(reused: false\)$", out, re.MULTILINE), out
    assert out.splitlines()[-1] == "SUCCEEDED 5/5", out


def test_grpcurl_example_runs(stack, tenant):
    env = run_env(stack, tenant.external_id)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    script = str(EXAMPLES["Calling with grpcurl"])
    out = run(["bash", "-euo", "pipefail", script], PROJECT_ROOT, env)
    states = [message["run"] for message in parse_stream(out)]
    assert len({state["id"] for state in states}) == 1, out
    assert states[-1]["status"] == "RUN_STATUS_SUCCEEDED", out
    assert states[-1]["counts"] == {"total": 5, "succeeded": 5}, out
