"""`npm test` of the TypeScript client against the live stack: starts a run
and watches it to its terminal state, typed errors, deadlines."""

from __future__ import annotations

import json
import os
import re
import subprocess

import grpc

from tests.clients.fake_server import Script, make_certs, scripted_server
from tests.clients.node import TS_DIR, npm_ci, run_env


def test_npm_test_against_the_live_server(stack, idle_stack, tenant):
    npm_ci()
    result = subprocess.run(
        ["npm", "test"],
        cwd=TS_DIR,
        env=run_env(stack, tenant.external_id, idle_stack),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    counts = dict(re.findall(r"^\S (tests|pass|fail|skipped) (\d+)$", output, re.MULTILINE))
    assert counts["fail"] == counts["skipped"] == "0", output[-3000:]
    assert counts["pass"] == counts["tests"] and int(counts["tests"]) >= 7, output[-3000:]


def scripted_call(target: str, **env: str) -> dict:
    result = subprocess.run(
        ["node", "--import", "tsx", "test/scripted.ts"],
        cwd=TS_DIR,
        env={**os.environ, "SCRIPTED_TARGET": target, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    answer: dict = {}
    for line in result.stdout.splitlines():  # one JSON object per line
        answer.update(json.loads(line))
    return answer


def test_typescript_token_retries_tls_and_mutual_tls(tmp_path):
    npm_ci()
    script = Script(unavailable_first=2)
    with scripted_server(script) as target:
        assert scripted_call(target, SCRIPTED_TOKEN="tok") == {"id": "r7"}
    assert script.calls == {"GetRun": 3}
    assert {m.get("authorization") for m in script.metadata} == {"Bearer tok"}

    with scripted_server(Script(unavailable_first=5)) as target:
        answer = scripted_call(target, SCRIPTED_ATTEMPTS="2")
        assert answer == {"status": "unavailable", "message": "try again"}

    certs = make_certs(tmp_path)
    for name in ("ca.pem", "client.pem", "client.key"):
        assert (tmp_path / name).exists()
    server_tls = grpc.ssl_server_credentials([(certs.server_key, certs.server_cert)])
    with scripted_server(Script(), server_credentials=server_tls) as target:
        assert scripted_call(target, SCRIPTED_CA=str(tmp_path / "ca.pem")) == {"id": "r7"}
        plain = scripted_call(target)
        assert plain["status"] in ("unavailable", "deadline_exceeded"), plain

    mutual = grpc.ssl_server_credentials(
        [(certs.server_key, certs.server_cert)],
        root_certificates=certs.ca,
        require_client_auth=True,
    )
    with scripted_server(Script(), server_credentials=mutual) as target:
        client_files = {
            "SCRIPTED_CA": str(tmp_path / "ca.pem"),
            "SCRIPTED_CERT": str(tmp_path / "client.pem"),
            "SCRIPTED_KEY": str(tmp_path / "client.key"),
        }
        assert scripted_call(target, **client_files) == {"id": "r7"}
        anonymous = scripted_call(target, SCRIPTED_CA=str(tmp_path / "ca.pem"))
        assert anonymous["status"] in ("unavailable", "deadline_exceeded", "internal", "unknown")


def test_typescript_broken_watch_resumes_from_the_last_version_seen():
    npm_ci()
    script = Script(watch_breaks=1)
    with scripted_server(script) as target:
        assert scripted_call(target, SCRIPTED_CALL="watch") == {"versions": ["1", "2"]}
    assert script.watch_after_versions == [None, 1]

    down = Script(watch_breaks=1, watch_down_after_break=True)
    with scripted_server(down) as target:
        answer = scripted_call(target, SCRIPTED_CALL="watch")
    assert answer == {"versions": ["1"], "status": "unavailable", "message": "server down"}
    assert down.watch_after_versions == [None, 1, 1, 1, 1]

    never = Script(unavailable_first=10)
    with scripted_server(never) as target:
        answer = scripted_call(target, SCRIPTED_CALL="watch")
    assert answer == {"versions": [], "status": "unavailable", "message": "try again"}
    assert never.calls == {"WatchRun": 1}
