"""`runsvc` argparse wiring: each command module adds its subcommands and the
function that runs them; main() parses, sets up logging and calls it."""

from __future__ import annotations

import argparse
import errno
import sys

from runsvc.cli import admin, runs, service, tenant
from runsvc.config import ConfigError
from runsvc.observe.logging import configure_process_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runsvc",
        description="Run orchestration for TenantPilot. Production commands read "
        "RUNSVC_DATABASE_URL and RUNSVC_BROKER_URL (default: the database).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    service.register(commands)
    admin.register(commands)
    tenant.register(commands)
    runs.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_process_logging()
    except ValueError as exc:  # RUNSVC_LOG_FORMAT
        print(f"runsvc: {exc}", file=sys.stderr)
        return 2
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"runsvc: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"runsvc: {exc.strerror}", file=sys.stderr)  # names the address
        return 1


if __name__ == "__main__":
    sys.exit(main())
