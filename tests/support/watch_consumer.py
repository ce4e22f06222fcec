"""A WatchRun consumer as its own process: prints `<version> <status>` per
message as it reads it, then `end <code>`. Its HTTP/2 window is small and
fixed, so a consumer that is stopped (SIGSTOP) soon stops the server's
writes to it, as a slow reader across a network would.

    python -m tests.support.watch_consumer TARGET TOKEN TENANT RUN_TYPE RUN_ID
"""

from __future__ import annotations

import sys

import grpc
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

SMALL_WINDOW = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]


def main() -> int:
    target, token, tenant, run_type, run_id = sys.argv[1:6]
    with grpc.insecure_channel(target, options=SMALL_WINDOW) as channel:
        stream = runs_pb2_grpc.RunServiceStub(channel).WatchRun(
            runs_pb2.WatchRunRequest(tenant_external_id=tenant, run_type=run_type, run_id=run_id),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=120,
        )
        try:
            for message in stream:
                print(message.run.version, runs_pb2.RunStatus.Name(message.run.status), flush=True)
        except grpc.RpcError as error:
            print("end", error.code().name, flush=True)
            return 1
    print("end OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
