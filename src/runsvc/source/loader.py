"""Chooses the TenantSource adapter named by configuration."""

from __future__ import annotations

import importlib

from psycopg_pool import ConnectionPool

from runsvc.source.port import TenantSource

BUILTIN = "runsvc.source.postgres:create"


def load_source(spec: str, pool: ConnectionPool) -> TenantSource:
    """`spec` is "module:factory"; the factory takes the worker's pool."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"tenant source must be 'module:factory', got {spec!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(pool)
