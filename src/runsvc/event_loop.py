"""The event loop of runsvc's own asyncio processes (the gRPC server, the
Graph emulator): uvloop where it is installed, asyncio's own loop where it
is not (Windows)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
