"""Channel settings shared by the blocking and the asyncio client: the
service config (retries), TLS credentials and the bearer-token metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

SERVICE = "tenantpilot.runs.v1.RunService"

#: Seconds a call may take unless the caller says otherwise. WatchRun streams
#: until the run ends, so it has a separate, longer default.
DEFAULT_TIMEOUT = 10.0
DEFAULT_WATCH_TIMEOUT = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC retry policy for the idempotent calls (GetRun, ListRuns,
    ListRunItems, GetCaller; CancelRun, which may be repeated; StartRun and RetryRun,
    idempotent by their dedupe key while the run is active). Only
    UNAVAILABLE is retried."""

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    backoff_multiplier: float = 2.0

    def method_config(self) -> dict[str, Any]:
        return {
            "name": [
                {"service": SERVICE, "method": method}
                for method in (
                    "GetRun",
                    "StartRun",
                    "ListRuns",
                    "ListRunItems",
                    "CancelRun",
                    "RetryRun",
                    "GetCaller",
                )
            ],
            "retryPolicy": {
                "maxAttempts": self.max_attempts,
                "initialBackoff": f"{self.initial_backoff}s",
                "maxBackoff": f"{self.max_backoff}s",
                "backoffMultiplier": self.backoff_multiplier,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }


def service_config(retry: RetryPolicy | None) -> str:
    """The JSON service config the client's channels use."""
    configs = [retry.method_config()] if retry is not None else []
    return json.dumps({"methodConfig": configs})


@dataclass(frozen=True)
class TLS:
    """TLS settings: a CA bundle (PEM) to trust, and for mutual TLS a client
    certificate chain and key (PEM). `server_name` overrides the name the
    server's certificate is checked against."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        ca: str | None,
        cert: str | None = None,
        key: str | None = None,
        server_name: str | None = None,
    ) -> TLS | None:
        """TLS from PEM files, as command lines take them (`--grpc-ca`,
        `--grpc-cert`, `--grpc-key`); None when none is named. ValueError
        with a message naming the flag when they are incomplete or unreadable."""
        if not (ca or cert or key):
            return None
        if not ca:
            raise ValueError("--grpc-cert/--grpc-key need --grpc-ca (TLS)")
        if bool(cert) != bool(key):
            raise ValueError("mutual TLS needs both --grpc-cert and --grpc-key")

        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot read {path}: {exc.strerror}") from None

        return cls(ca=read(ca), cert=read(cert), key=read(key), server_name=server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        """Channel options that go with these credentials."""
        if self.server_name:
            return [("grpc.ssl_target_name_override", self.server_name)]
        return []


TLSOption = TLS | bytes | grpc.ChannelCredentials | None


def channel_args(
    tls: TLSOption, retry: RetryPolicy | None
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    """Credentials (None: plaintext) and channel options for a target."""
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", service_config(retry)),
        ("grpc.enable_retries", 1 if retry is not None else 0),
    ]
    if tls is None:
        return None, options
    if isinstance(tls, bytes):
        tls = TLS(ca=tls)
    if isinstance(tls, TLS):
        return tls.credentials(), options + tls.channel_options()
    return tls, options


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
