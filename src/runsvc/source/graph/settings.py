"""The Graph adapter's settings (RUNSVC_GRAPH_*), read once per worker
process. The app's secret or certificate key is held in memory only: never
in a repr, a log line or the database."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from runsvc.config import ConfigError, _float, _int

DEFAULT_GRAPH_URL = "https://graph.microsoft.com"
DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"


@dataclass(frozen=True)
class Certificate:
    """A certificate credential: the key signs client assertions; Entra knows the certificate."""

    private_key_pem: str = field(repr=False)
    certificate_pem: str
    thumbprint: str  # SHA-1, hex, as MSAL wants it


@dataclass(frozen=True)
class Budget:
    """Graph's documented per-app-per-tenant limits for Intune device
    configuration: requests and writes per window."""

    requests: int = 1000
    writes: int = 100
    window_seconds: float = 20.0


@dataclass(frozen=True)
class GraphSettings:
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate: Certificate | None = None
    graph_url: str = DEFAULT_GRAPH_URL
    login_url: str = DEFAULT_LOGIN_URL
    ca_file: str | None = None
    budget: Budget = Budget()
    # Longest wait for one HTTP answer of Graph or the login endpoint (a
    # call's own deadline may be sooner).
    timeout_seconds: float = 30.0

    @property
    def scope(self) -> str:
        return f"{self.graph_url}/.default"

    @classmethod
    def from_env(cls) -> GraphSettings:
        client_id = os.environ.get("RUNSVC_GRAPH_CLIENT_ID", "").strip()
        if not client_id:
            raise ConfigError("RUNSVC_GRAPH_CLIENT_ID is not set (the Entra app's client id)")
        secret = os.environ.get("RUNSVC_GRAPH_CLIENT_SECRET") or None
        secret_file = os.environ.get("RUNSVC_GRAPH_CLIENT_SECRET_FILE") or None
        cert_file = os.environ.get("RUNSVC_GRAPH_CERTIFICATE_FILE") or None
        if sum(x is not None for x in (secret, secret_file, cert_file)) != 1:
            raise ConfigError(
                "set exactly one of RUNSVC_GRAPH_CLIENT_SECRET, RUNSVC_GRAPH_CLIENT_SECRET_FILE "
                "and RUNSVC_GRAPH_CERTIFICATE_FILE"
            )
        if secret_file:
            secret = _read(secret_file, "RUNSVC_GRAPH_CLIENT_SECRET_FILE").strip()
            if not secret:
                raise ConfigError(f"RUNSVC_GRAPH_CLIENT_SECRET_FILE {secret_file!r} is empty")
        ca_file = os.environ.get("RUNSVC_GRAPH_CA_FILE") or None
        if ca_file:
            _read(ca_file, "RUNSVC_GRAPH_CA_FILE")
        return cls(
            client_id=client_id,
            client_secret=secret,
            certificate=load_certificate(cert_file) if cert_file else None,
            graph_url=_https_url("RUNSVC_GRAPH_URL", DEFAULT_GRAPH_URL),
            login_url=_https_url("RUNSVC_GRAPH_LOGIN_URL", DEFAULT_LOGIN_URL),
            ca_file=ca_file,
            budget=Budget(
                requests=_int("RUNSVC_GRAPH_BUDGET_REQUESTS", 1000),
                writes=_int("RUNSVC_GRAPH_BUDGET_WRITES", 100),
                window_seconds=_float("RUNSVC_GRAPH_BUDGET_WINDOW_SECONDS", 20.0),
            ),
            timeout_seconds=_float("RUNSVC_GRAPH_TIMEOUT_SECONDS", 30.0),
        )


def _read(path: str, name: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        raise ConfigError(f"{name} {path!r} cannot be read") from None


def _https_url(name: str, default: str) -> str:
    url = (os.environ.get(name) or default).rstrip("/")
    parts = urlsplit(url)
    # MSAL accepts only https authorities, and a token must never travel in clear.
    if parts.scheme != "https" or not parts.hostname or parts.path or parts.query:
        raise ConfigError(f"{name} must be an https URL with no path, got {url!r}")
    return url


def load_certificate(path: str) -> Certificate:
    """A PEM file holding the private key (unencrypted) and the certificate."""
    data = _read(path, "RUNSVC_GRAPH_CERTIFICATE_FILE").encode()
    try:
        certificate = x509.load_pem_x509_certificate(data)
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(
            "RUNSVC_GRAPH_CERTIFICATE_FILE must hold a PEM certificate and its unencrypted "
            "private key"
        ) from None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Certificate(
        private_key_pem=key_pem.decode(),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        thumbprint=hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )
