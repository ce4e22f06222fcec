"""Access tokens for Graph: client credentials of one multi-tenant app
registration, through MSAL, one token per customer tenant.

MSAL keeps each tenant's token in memory and asks for a new one once the
cached token has less than five minutes left, so a token is refreshed before
it expires. A token Graph refuses anyway (401) is dropped and fetched anew.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import msal

from runsvc.source.graph.errors import GraphRefused, GraphUnavailable
from runsvc.source.graph.settings import DEFAULT_LOGIN_URL, GraphSettings

log = logging.getLogger(__name__)

# Stable, safe codes for a tenant runsvc cannot sign in to.
AUTH_FAILED = "GRAPH_AUTH_FAILED"  # the app's secret or certificate is refused
CONSENT_MISSING = "GRAPH_CONSENT_MISSING"  # no admin consent in the customer tenant
TENANT_NOT_FOUND = "GRAPH_TENANT_NOT_FOUND"  # Entra knows no such tenant

_PERMANENT = {
    "invalid_client": AUTH_FAILED,
    "unauthorized_client": CONSENT_MISSING,
    "invalid_grant": CONSENT_MISSING,
    "invalid_tenant": TENANT_NOT_FOUND,
    "invalid_request": AUTH_FAILED,
    "invalid_scope": AUTH_FAILED,
}


class MsalHttp:
    """MSAL's small HTTP client interface (get, post) over the adapter's httpx
    client: one connection pool, one CA bundle, one deadline for all calls."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def post(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if isinstance(data, dict):
            # MSAL hands some form values (the client assertion) as bytes.
            form = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
            return self._http.post(url, params=params, data=form, headers=headers)
        return self._http.post(url, params=params, content=data, headers=headers)

    def get(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        return self._http.get(url, params=params, headers=headers)


class TokenProvider:
    def __init__(self, settings: GraphSettings, http: httpx.Client) -> None:
        self._settings = settings
        self._http = http
        self._apps: dict[str, msal.ConfidentialClientApplication] = {}
        # One lock per tenant: concurrent callers share one token request.
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, graph_tenant_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(graph_tenant_id, threading.Lock())

    def _app(self, graph_tenant_id: str) -> msal.ConfidentialClientApplication:
        app = self._apps.get(graph_tenant_id)
        if app is not None:
            return app
        settings = self._settings
        credential: str | dict[str, str]
        if settings.certificate is not None:
            credential = {
                "private_key": settings.certificate.private_key_pem,
                "thumbprint": settings.certificate.thumbprint,
                "public_certificate": settings.certificate.certificate_pem,
            }
        else:
            assert settings.client_secret is not None
            credential = settings.client_secret
        try:
            # Building the app discovers the tenant's endpoints (one request).
            app = msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=credential,
                authority=f"{settings.login_url}/{graph_tenant_id}",
                # A login host other than Microsoft's (the emulator) is known
                # to us; MSAL would ask Microsoft's instance discovery about it.
                instance_discovery=settings.login_url == DEFAULT_LOGIN_URL,
                http_client=MsalHttp(self._http),
            )
        except ValueError:
            # MSAL's word for a tenant whose endpoints cannot be discovered.
            log.warning("Graph tenant %s: no such Entra tenant", graph_tenant_id)
            raise GraphRefused(TENANT_NOT_FOUND) from None
        except httpx.HTTPError as exc:
            raise GraphUnavailable(f"login endpoint: {type(exc).__name__}") from None
        self._apps[graph_tenant_id] = app
        return app

    def token(self, graph_tenant_id: str) -> str:
        """A valid access token for the tenant (cached, refreshed before expiry)."""
        with self._lock(graph_tenant_id):
            app = self._app(graph_tenant_id)
            try:
                result = app.acquire_token_for_client(scopes=[self._settings.scope])
            except httpx.HTTPError as exc:
                raise GraphUnavailable(f"token endpoint: {type(exc).__name__}") from None
            except msal.exceptions.MsalServiceError:
                # A token endpoint answer that is not OAuth JSON (5xx, proxy pages).
                raise GraphUnavailable("token endpoint unavailable") from None
        if "access_token" in result:
            return result["access_token"]
        error = str(result.get("error", ""))
        # The error code and AADSTS numbers only: descriptions are the
        # service's own text and stay out of logs and safe errors.
        log.warning(
            "Graph tenant %s: sign-in refused (%s, AADSTS %s)",
            graph_tenant_id,
            error,
            result.get("error_codes"),
        )
        if error in _PERMANENT:
            raise GraphRefused(_PERMANENT[error])
        raise GraphUnavailable(f"token endpoint: {error or 'no token'}")

    def discard(self, graph_tenant_id: str, access_token: str) -> None:
        """Forgets a token that Graph refused, so that the next call gets a new one."""
        with self._lock(graph_tenant_id):
            app = self._apps.get(graph_tenant_id)
            if app is None:
                return
            cache = app.token_cache
            for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                if entry.get("secret") == access_token:
                    cache.remove_at(entry)
