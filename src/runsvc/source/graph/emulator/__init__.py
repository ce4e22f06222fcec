"""An emulator of the Microsoft Graph API that runsvc's Graph adapter uses: a
real HTTPS server for tests, benchmarks and `runsvc dev --graph-emulator`."""

from runsvc.source.graph.emulator.server import GraphEmulator
from runsvc.source.graph.emulator.state import (
    COLLECTIONS,
    READ,
    READ_WRITE,
    EmulatorState,
    Knobs,
)

__all__ = ["COLLECTIONS", "READ", "READ_WRITE", "EmulatorState", "GraphEmulator", "Knobs"]
