"""The server depends on the generated code alone: no module of the server,
store, worker, handlers or source imports the hand-written Python client."""

from __future__ import annotations

import subprocess
import sys

SERVER_MODULES = (
    "runsvc.server.app",
    "runsvc.worker.executor",
    "runsvc.store.runs",
    "runsvc.handlers",
    "runsvc.source.postgres",
)


def test_server_modules_import_the_generated_code_but_not_the_client():
    probe = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in SERVER_MODULES)
        + "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'runsvc_client', 'tenantpilot', 'buf', 'runsvc_gateway'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split("\n")[0] == "['buf', 'tenantpilot']", done.stdout + done.stderr
