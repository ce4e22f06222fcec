"""`python -m runsvc.source.graph.emulator`: the Graph emulator as a process.

Prints one JSON line when it listens ({"url": ..., "caFile": ...}) and
serves until SIGTERM or SIGINT. Setup and counts: the /_emulator/ routes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from runsvc import event_loop
from runsvc.source.graph.emulator.server import bind_loopback, uvicorn_server
from runsvc.source.graph.emulator.state import EmulatorState, Knobs
from runsvc.source.graph.emulator.tls import write_server_files


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runsvc.source.graph.emulator",
        description="An emulator of the Microsoft Graph Intune API (tests, dev, benchmarks).",
    )
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--dir", type=Path, required=True, help="where the TLS files go")
    parser.add_argument("--client-id", required=True, help="the app registration it knows")
    parser.add_argument("--client-secret-file", type=Path, help="file holding that app's secret")
    parser.add_argument(
        "--client-certificate", type=Path, help="PEM certificate of that app (certificate sign-in)"
    )
    parser.add_argument(
        "--tenants",
        type=Path,
        help='JSON: {"tenantId": ..., "objects": {collection: [...]}}, or a list of them',
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per HTTP request")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--omit-retry-after", type=float, default=0.0, metavar="RATIO")
    parser.add_argument("--unavailable", type=float, default=0.0, metavar="RATIO")
    parser.add_argument("--seed", type=int, default=None, help="seed of its random choices")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.client_secret_file and not args.client_certificate:
        print("emulator: give --client-secret-file or --client-certificate", file=sys.stderr)
        return 2
    state = EmulatorState(
        Knobs(
            latency=args.latency,
            page_size=args.page_size,
            omit_retry_after_ratio=args.omit_retry_after,
            unavailable_ratio=args.unavailable,
        ),
        seed=args.seed,
    )
    state.add_app(
        args.client_id,
        secret=args.client_secret_file.read_text().strip() if args.client_secret_file else None,
        certificate_pem=args.client_certificate.read_bytes() if args.client_certificate else None,
    )
    tenants = json.loads(args.tenants.read_text()) if args.tenants else []
    for tenant in tenants if isinstance(tenants, list) else [tenants]:
        state.add_tenant(tenant["tenantId"], consent=[args.client_id])
        for collection, objects in tenant.get("objects", {}).items():
            for obj in objects:
                state.put_object(tenant["tenantId"], collection, obj)
    files = write_server_files(args.dir)
    sock = bind_loopback(args.port)
    server = uvicorn_server(state, files)

    async def serve() -> None:
        async def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.02)
            port = sock.getsockname()[1]
            print(
                json.dumps({"url": f"https://127.0.0.1:{port}", "caFile": str(files.ca_file)}),
                flush=True,
            )

        announcer = asyncio.create_task(announce())
        try:
            await server.serve(sockets=[sock])
        finally:
            announcer.cancel()

    event_loop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
