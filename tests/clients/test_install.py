"""`pip install ./clients/python` in a fresh virtual environment, without the
server, gives a working client: the generated code and the typed wrapper."""

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

    import runsvc_client, tenantpilot.runs.v1.runs_pb2 as runs_pb2
    from runsvc_client import RunsClient, InvalidArgument, is_terminal

    assert importlib.util.find_spec("runsvc") is None, "the server must not be installed"
    package = Path(runsvc_client.__file__).parent
    generated = Path(runs_pb2.__file__).parent
    typing_files = sorted(p.name for p in [*package.glob("py.typed"), *generated.glob("*.pyi")])

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


def test_pip_install_in_a_fresh_venv_and_call_the_live_server(stack, tenant, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "./clients/python"],
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
    assert report["typing"] == ["py.typed", "runs_pb2.pyi", "runs_pb2_grpc.pyi"]
    assert report["final"] == "RUN_STATUS_SUCCEEDED" and report["terminal"]
    assert report["field"] == "run_type"
    assert sys.executable != str(python)
