"""Run by test_tracing in a fresh interpreter: the gateway (uvicorn, real
HTTP), the gRPC server and a worker's executor in one process with the
OpenTelemetry SDK's in-memory exporter, so that every span of one HTTP POST
is in one place. Prints the finished spans as JSON lines.

    python -m tests.observe.trace_scenario DATABASE_URL
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
import uuid

import httpx
import uvicorn
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from psycopg_pool import ConnectionPool

from runsvc_observe.tracing import configure_tracing


def main(database_url: str) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("trace-scenario", exporter=exporter)  # before anything is built

    from runsvc.config import Settings
    from runsvc.seed import seed
    from runsvc.server.app import start_server
    from runsvc.source.loader import BUILTIN, load_source
    from runsvc.tokens import Role, create_token
    from runsvc.worker.executor import Executor
    from runsvc_gateway.app import Settings as GatewaySettings
    from runsvc_gateway.app import create_app

    os.environ["RUNSVC_QUEUE"] = f"trace-{uuid.uuid4().hex[:8]}"  # no consumer: we execute
    os.environ["RUNSVC_BATCH_SIZE"] = "2"
    settings = Settings.from_env(database_url=database_url)
    tenant = f"trace-{uuid.uuid4().hex[:8]}"
    policies = [{"id": f"p{i}", "type": "t", "displayName": "P", "payload": {"i": i}}
                for i in range(5)]  # fmt: skip
    seed(database_url, {"tenants": [{"externalId": tenant, "policies": policies}]})
    token = create_token(database_url, name=f"trace-{tenant}", role=Role.OPERATOR, tenants=None)

    loop = asyncio.new_event_loop()
    running = loop.run_until_complete(start_server(settings, "127.0.0.1:0"))
    server_thread = threading.Thread(target=loop.run_forever, daemon=True)
    server_thread.start()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{running.port}"))
    http_server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    http_thread = threading.Thread(target=http_server.run, kwargs={"sockets": [sock]}, daemon=True)
    http_thread.start()
    while not http_server.started:
        time.sleep(0.01)

    url = f"http://127.0.0.1:{sock.getsockname()[1]}/admin/t/{tenant}/runs/snapshot_capture"
    response = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 201, response.text
    run_id = uuid.UUID(response.json()["run"]["id"])

    # The worker's part, on this (span-less) thread: only the run row's
    # stored context can link it to the request.
    with ConnectionPool(database_url, min_size=1, max_size=4) as pool:
        finished = Executor(pool, load_source(BUILTIN, pool), settings).execute(run_id)
    assert [(run.id, run.status.value) for run in finished] == [(run_id, "succeeded")], finished

    http_server.should_exit = True
    http_thread.join(10)
    asyncio.run_coroutine_threadsafe(running.stop(grace=0), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    server_thread.join(10)

    for span in exporter.get_finished_spans():
        context = span.get_span_context()
        print(
            json.dumps(
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": format(context.trace_id, "032x"),
                    "span_id": format(context.span_id, "016x"),
                    "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                    "attributes": {
                        k: v for k, v in span.attributes.items() if isinstance(v, str | int)
                    },
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1])
