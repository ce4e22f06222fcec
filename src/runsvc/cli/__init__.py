"""`runsvc`, the command line: process commands, admin commands and the
operator commands over gRPC (see main.py for the wiring)."""

from runsvc.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
