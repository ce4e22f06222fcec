"""Settings from the environment (RUNSVC_*), read once per process."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from runsvc.source.loader import BUILTIN as BUILTIN_SOURCE
from runsvc.validation import MAX_ITEM_IDS


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
    # The largest batch, and the time a batch aims at (batches grow or
    # shrink toward it, so progress, cancel and stop stay prompt).
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
    # Execution engine v2 (the worker): how long a source call may take, how
    # long a stopping worker may take to give its run back, and how long
    # finished runs (and, separately, audit events) are kept.
    source_timeout_seconds: float = 30.0
    shutdown_grace_seconds: float = 20.0
    retention_days: float = 30.0
    audit_retention_days: float = 365.0
    maintenance_interval_seconds: float = 300.0
    # Authentication: how long a token lookup is trusted (so a revocation
    # takes effect within it), and how often last_used_at is written.
    auth_cache_seconds: float = 5.0
    auth_touch_seconds: float = 60.0
    # TLS of the gRPC listener: cert and key together; a client CA turns on
    # mutual TLS (clients must present a certificate it signed).
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None

    def with_tls(self, cert: str | None, key: str | None, client_ca: str | None) -> Settings:
        """These settings with TLS files given on the command line, if any."""
        return check_tls(
            dataclasses.replace(
                self,
                tls_cert=cert or self.tls_cert,
                tls_key=key or self.tls_key,
                tls_client_ca=client_ca or self.tls_client_ca,
            )
        )

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
            batch_size=_int("RUNSVC_BATCH_SIZE", 1000),
            flush_seconds=_float("RUNSVC_FLUSH_SECONDS", 0.5),
            max_attempts=_int("RUNSVC_MAX_ATTEMPTS", 5),
            source_retries=_int("RUNSVC_SOURCE_RETRIES", 4),
            source_retry_base_seconds=_float("RUNSVC_SOURCE_RETRY_BASE_SECONDS", 0.2),
            tenant_source=os.environ.get("RUNSVC_TENANT_SOURCE") or BUILTIN_SOURCE,
            redispatch_seconds=_float("RUNSVC_REDISPATCH_SECONDS", 30.0),
            reaper_interval_seconds=_float("RUNSVC_REAPER_INTERVAL_SECONDS", 5.0),
            max_item_ids=_max_item_ids(),
            source_timeout_seconds=_float("RUNSVC_SOURCE_TIMEOUT_SECONDS", 30.0),
            shutdown_grace_seconds=_float("RUNSVC_SHUTDOWN_GRACE_SECONDS", 20.0),
            retention_days=_float("RUNSVC_RETENTION_DAYS", 30.0),
            audit_retention_days=_float("RUNSVC_AUDIT_RETENTION_DAYS", 365.0),
            maintenance_interval_seconds=_float("RUNSVC_MAINTENANCE_INTERVAL_SECONDS", 300.0),
            auth_cache_seconds=_float("RUNSVC_AUTH_CACHE_SECONDS", 5.0),
            auth_touch_seconds=_float("RUNSVC_AUTH_TOUCH_SECONDS", 60.0),
            tls_cert=os.environ.get("RUNSVC_TLS_CERT") or None,
            tls_key=os.environ.get("RUNSVC_TLS_KEY") or None,
            tls_client_ca=os.environ.get("RUNSVC_TLS_CLIENT_CA") or None,
        )


def _max_item_ids() -> int:
    """RUNSVC_MAX_ITEM_IDS may lower the contract's ceiling, never raise it."""
    value = _int("RUNSVC_MAX_ITEM_IDS", MAX_ITEM_IDS)
    if value > MAX_ITEM_IDS:
        raise ConfigError(
            f"RUNSVC_MAX_ITEM_IDS must be at most {MAX_ITEM_IDS} (the contract's limit)"
        )
    return value


def check_tls(settings: Settings) -> Settings:
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("TLS needs both a certificate and a key (RUNSVC_TLS_CERT/KEY)")
    if settings.tls_client_ca and not settings.tls_cert:
        raise ConfigError("a client CA (mutual TLS) needs a server certificate and key too")
    for name, path in (
        ("certificate", settings.tls_cert),
        ("key", settings.tls_key),
        ("client CA", settings.tls_client_ca),
    ):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"TLS {name} file {path!r} cannot be read")
    return settings
