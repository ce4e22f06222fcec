"""Settings from the environment (RUNSVC_*), read once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass

from runsvc.source.loader import BUILTIN as BUILTIN_SOURCE


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _int(name: str, default: int) -> int:
    value = _float(name, default)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number")
    return int(value)


@dataclass(frozen=True)
class Settings:
    database_url: str
    # Defaults to the database: the Postgres broker needs no other service.
    broker_url: str
    queue_name: str
    # Executor
    lease_seconds: float
    batch_size: int
    flush_seconds: float
    max_attempts: int
    source_retries: int
    source_retry_base_seconds: float
    tenant_source: str
    # Reaper: how long a queued run waits before its message is sent again
    redispatch_seconds: float
    reaper_interval_seconds: float
    # Limits of StartRun
    max_item_ids: int

    @classmethod
    def from_env(cls, *, database_url: str | None = None) -> Settings:
        url = database_url or os.environ.get("RUNSVC_DATABASE_URL", "")
        if not url:
            raise ConfigError("RUNSVC_DATABASE_URL is not set")
        return cls(
            database_url=url,
            broker_url=os.environ.get("RUNSVC_BROKER_URL") or url,
            queue_name=os.environ.get("RUNSVC_QUEUE") or "runsvc.runs",
            lease_seconds=_float("RUNSVC_LEASE_SECONDS", 30.0),
            batch_size=_int("RUNSVC_BATCH_SIZE", 100),
            flush_seconds=_float("RUNSVC_FLUSH_SECONDS", 0.5),
            max_attempts=_int("RUNSVC_MAX_ATTEMPTS", 5),
            source_retries=_int("RUNSVC_SOURCE_RETRIES", 4),
            source_retry_base_seconds=_float("RUNSVC_SOURCE_RETRY_BASE_SECONDS", 0.2),
            tenant_source=os.environ.get("RUNSVC_TENANT_SOURCE") or BUILTIN_SOURCE,
            redispatch_seconds=_float("RUNSVC_REDISPATCH_SECONDS", 30.0),
            reaper_interval_seconds=_float("RUNSVC_REAPER_INTERVAL_SECONDS", 5.0),
            max_item_ids=_int("RUNSVC_MAX_ITEM_IDS", 10_000),
        )
