"""runsvc-gateway: the legacy admin HTTP contract over the gRPC RunService.

It talks to the server only through the generated client (runsvc-client),
imports no server code and opens no database connection."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
