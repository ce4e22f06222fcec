"""The drift check (`make check-gen`, part of `make test`) in a copy of the
tree: up to date passes; an edited generated file (Python or TypeScript) or
a proto change without `make gen` fails and names the stale files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.node import TS_DIR, npm_ci
from tests.conftest import PROJECT_ROOT

PY_GEN = Path("clients/python-proto/src/tenantpilot/runs/v1")
TS_GEN = Path("clients/typescript/src/gen/tenantpilot/runs/v1")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    npm_ci()
    root = tmp_path / "tree"
    for name in ("proto", "third_party", "scripts", "clients/python-proto/src"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__py*"))
    shutil.copytree(TS_DIR / "src" / "gen", root / "clients/typescript/src/gen")
    for name in ("buf.yaml", "buf.gen.yaml"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    (root / "clients/typescript/node_modules").symlink_to(TS_DIR / "node_modules")
    return root


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/gen_protos.py", "--check"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_drift_check_passes_then_catches_edits_and_stale_code(tree):
    fresh = check(tree)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "up to date" in fresh.stdout

    python_file = tree / PY_GEN / "runs_pb2.pyi"
    python_file.write_text(python_file.read_text() + "# edited by hand\n")
    ts_file = tree / TS_GEN / "runs_pb.ts"
    ts_file.write_text(ts_file.read_text().replace("RunRecord", "RunRec0rd", 1))
    edited = check(tree)
    assert edited.returncode == 1
    assert f"{PY_GEN}/runs_pb2.pyi" in edited.stdout
    assert f"{TS_GEN}/runs_pb.ts" in edited.stdout

    # `make gen` (the script without --check) repairs both.
    subprocess.run([sys.executable, "scripts/gen_protos.py"], cwd=tree, check=True, timeout=300)
    assert check(tree).returncode == 0

    proto = tree / "proto/tenantpilot/runs/v1/runs.proto"
    proto.write_text(
        proto.read_text().replace(
            "  int64 version = 10;\n", "  int64 version = 10;\n  // New.\n  string note = 11;\n"
        )
    )
    stale = check(tree)
    assert stale.returncode == 1
    for name in (f"{PY_GEN}/runs_pb2.py", f"{PY_GEN}/runs_pb2.pyi", f"{TS_GEN}/runs_pb.ts"):
        assert name in stale.stdout, stale.stdout

    (tree / TS_GEN / "runs_pb.ts").unlink()
    assert f"{TS_GEN}/runs_pb.ts" in check(tree).stdout
