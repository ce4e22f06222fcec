"""`pip install ./clients/python-proto ./clients/python` in a fresh virtual
environment, without the server, gives a working client: the generated code
(its own distribution) and the typed wrapper over it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

from tests.conftest import PROJECT_ROOT

SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys
    from pathlib import Path

    import runsvc_client, tenantpilot, tenantpilot.runs.v1.runs_pb2 as runs_pb2
    from runsvc_client import RunsClient, InvalidArgument, is_terminal

    assert importlib.util.find_spec("runsvc") is None, "the server must not be installed"
    from importlib import metadata
    # The generated code is its own distribution; the client ships none of it.
    client_files = [str(f) for f in metadata.files("runsvc-client")]
    assert not [f for f in client_files if f.startswith(("tenantpilot/", "buf/"))], client_files
    assert any(str(f).endswith("runs_pb2.py") for f in metadata.files("runsvc-proto"))
    package = Path(runsvc_client.__file__).parent
    site = package.parent
    typing_files = sorted(
        str(p.relative_to(site))
        for root in (package, Path(tenantpilot.__file__).parent)
        for p in [*root.rglob("py.typed"), *root.rglob("*.pyi")]
    )

    target, tenant, token = sys.argv[1], sys.argv[2], sys.argv[3] or None
    with RunsClient(target, token=token) as client:
        run = client.start_run(tenant=tenant, run_type="snapshot_capture").run
        states = list(client.watch_run(tenant=tenant, run_type=run.type, run_id=run.id))
        try:
            client.start_run(tenant=tenant, run_type="nope")
        except InvalidArgument as error:
            field = error.field
    print(json.dumps({
        "site": str(package),
        "typing": typing_files,
        "final": runs_pb2.RunStatus.Name(states[-1].status),
        "terminal": is_terminal(states[-1]),
        "field": field,
    }))
    """
)


TYPED_CALLER = textwrap.dedent(
    """
    from runsvc_client import AsyncRunsClient, InvalidArgument, RunsClient
    from tenantpilot.runs.v1 import runs_pb2


    def total(client: RunsClient) -> int:
        run: runs_pb2.RunRecord = client.get_run(tenant="t", run_type="x", run_id="r")
        return run.counts.total


    async def watch(client: AsyncRunsClient) -> list[int]:
        return [s.version async for s in client.watch_run(tenant="t", run_type="x", run_id="r")]


    def field(error: InvalidArgument) -> str | None:
        return error.field
    """
)
WRONG_CALLER = textwrap.dedent(
    """
    from runsvc_client import RunsClient

    def total(client: RunsClient) -> str:
        return client.get_run(tenant="t", run_type="x", run_id="r").counts.total
    """
)


def test_pip_install_in_a_fresh_venv_and_call_the_live_server(stack, tenant, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "./clients/python-proto",
            "./clients/python",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-4000:]

    result = subprocess.run(
        [str(python), "-c", SCRIPT, stack.target, tenant.external_id, stack.token or ""],
        cwd=tmp_path,  # not the source tree: only what was installed is importable
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert Path(report["site"]).is_relative_to(env_dir), report["site"]
    assert report["typing"] == [
        "runsvc_client/py.typed",
        "tenantpilot/py.typed",
        "tenantpilot/runs/v1/rules_pb2.pyi",
        "tenantpilot/runs/v1/rules_pb2_grpc.pyi",
        "tenantpilot/runs/v1/runs_pb2.pyi",
        "tenantpilot/runs/v1/runs_pb2_grpc.pyi",
    ]
    assert report["final"] == "RUN_STATUS_SUCCEEDED" and report["terminal"]
    assert report["field"] == "run_type"

    # Callers type-check against the package's hints and .pyi stubs.
    mypy = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "mypy"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert mypy.returncode == 0, mypy.stderr[-3000:]
    (tmp_path / "typed_caller.py").write_text(TYPED_CALLER)
    (tmp_path / "wrong_caller.py").write_text(WRONG_CALLER)
    typed = subprocess.run(
        [str(python), "-m", "mypy", "--strict", "--no-incremental", "typed_caller.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert typed.returncode == 0, typed.stdout + typed.stderr
    wrong = subprocess.run(
        [str(python), "-m", "mypy", "--strict", "--no-incremental", "wrong_caller.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert wrong.returncode == 1 and 'got "int", expected "str"' in wrong.stdout, wrong.stdout
    assert sys.executable != str(python)
