"""`runsvc` argparse wiring: each command module adds its subcommands and the
function that runs them; main() parses, sets up logging and calls it."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from runsvc.cli import admin, runs, service
from runsvc.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runsvc",
        description="Run orchestration for TenantPilot. Production commands read "
        "RUNSVC_DATABASE_URL and RUNSVC_BROKER_URL (default: the database).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    service.register(commands)
    admin.register(commands)
    runs.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("RUNSVC_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"runsvc: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
