"""Authentication and authorisation of every RPC, one check per method.

Callers send `authorization: Bearer <token>`. Health and reflection are
open; every other method needs a token whose role allows the method and
whose grants include the request's tenant (the tenant is in the request
message, so the check runs on the deserialised request before the
servicer, or the stream, starts: runsvc.server.calls).

    no / malformed / unknown / revoked token -> UNAUTHENTICATED
    tenant not granted, role too weak        -> PERMISSION_DENIED
    a method not in METHOD_ROLES             -> PERMISSION_DENIED (deny by default)

Tokens are looked up through a small cache (`cache_seconds`), so a
revocation takes effect within that time; last_used_at is written at most
once per `touch_seconds` per token and server process.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import grpc
import psycopg
from psycopg_pool import AsyncConnectionPool

from runsvc.redact import describe_exception
from runsvc.store import auth as store
from runsvc.tokens import Principal, Role, hash_token, key_id_of, principal_from_row

log = logging.getLogger(__name__)

_SERVICE = "/tenantpilot.runs.v1.RunService/"
# The role each method needs. A method missing here is refused, so a new
# RPC is closed until it is listed.
METHOD_ROLES: dict[str, Role] = {
    f"{_SERVICE}StartRun": Role.OPERATOR,
    f"{_SERVICE}GetRun": Role.VIEWER,
    f"{_SERVICE}WatchRun": Role.VIEWER,
    f"{_SERVICE}ListRuns": Role.VIEWER,
    f"{_SERVICE}ListRunItems": Role.VIEWER,
    f"{_SERVICE}CancelRun": Role.OPERATOR,
    f"{_SERVICE}RetryRun": Role.OPERATOR,
    f"{_SERVICE}GetCaller": Role.VIEWER,
}
# Methods that address no tenant (they describe the caller itself): the
# token and its role are checked, there is no grant to check.
TENANTLESS_METHODS = frozenset({f"{_SERVICE}GetCaller"})
# Services any caller may use without a token.
PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_BEARER = "bearer "
_CACHE_LIMIT = 10_000

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "runsvc_principal", default=None
)


def current_principal() -> Principal | None:
    """The caller of the RPC being served (set by the method's check)."""
    return _principal.get()


class Cache(enum.Enum):
    MISS = "miss"


class Authenticator:
    """Turns a presented token into a Principal, through a short-lived cache."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        cache_seconds: float = 5.0,
        touch_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._cache_seconds = cache_seconds
        self._touch_seconds = touch_seconds
        self._clock = clock
        # sha256(token) -> (expires at, principal or None for a refused token)
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}
        self._inflight: dict[bytes, asyncio.Future[Principal | None]] = {}

    def cached(self, token: str) -> Principal | Literal[Cache.MISS] | None:
        """The token's principal (None: refused) if the cache still knows
        it, else Cache.MISS: most calls end here, with no coroutine to run."""
        return self._fresh(hash_token(token))

    def _fresh(self, digest: bytes) -> Principal | Literal[Cache.MISS] | None:
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        return Cache.MISS

    async def authenticate(self, token: str) -> Principal | None:
        key_id = key_id_of(token)
        if key_id is None:
            return None  # not even shaped like a token: no database trip
        digest = hash_token(token)
        cached = self._fresh(digest)
        if cached is not Cache.MISS:
            return cached
        # Single flight: a burst of calls with one uncached token makes one
        # lookup, and every caller awaits it (shielded: one caller giving up
        # does not cancel it for the others).
        lookup = self._inflight.get(digest)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup_and_remember(digest, key_id, token))
            self._inflight[digest] = lookup
            lookup.add_done_callback(lambda _: self._inflight.pop(digest, None))
        return await asyncio.shield(lookup)

    async def _lookup_and_remember(
        self, digest: bytes, key_id: str, token: str
    ) -> Principal | None:
        principal = await self._lookup(key_id, token)
        self._remember(digest, self._clock() + self._cache_seconds, principal)
        return principal

    async def _lookup(self, key_id: str, token: str) -> Principal | None:
        async with self._pool.connection() as conn:
            row = await store.token_get_active_by_key(conn, key_id)
            principal = principal_from_row(row, token) if row is not None else None
            if principal is not None:
                await store.token_touch(conn, principal.token_id, touch_after=self._touch_seconds)
        return principal

    def _remember(self, digest: bytes, expires: float, principal: Principal | None) -> None:
        if len(self._cache) >= _CACHE_LIMIT:
            now = self._clock()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()  # a flood of distinct tokens: start over
        self._cache[digest] = (expires, principal)


def bearer_token(metadata: Any) -> str | None:
    """The token of the one well-formed `authorization: Bearer` header, else None."""
    values = [value for key, value in (metadata or ()) if key == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    value = values[0].strip()
    if value[: len(_BEARER)].lower() != _BEARER:
        return None
    token = value[len(_BEARER) :].strip()
    return token or None


# (request, context, the call's invocation metadata)
Check = Callable[[Any, grpc.aio.ServicerContext, Any], Awaitable[None]]


class AuthGuard:
    """The check of each method, made once (runsvc.server.calls runs it on
    the deserialised request before the servicer, or the stream, starts)."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    def check_for(self, method: str) -> Check | None:
        """The method's check; None for the public services."""
        if method.startswith(PUBLIC_PREFIXES):
            return None
        needed = METHOD_ROLES.get(method)

        async def check(request: Any, context: grpc.aio.ServicerContext, metadata: Any) -> None:
            async def refuse(code: grpc.StatusCode, message: str, why: str) -> None:
                # Never the token: at most its public key id, or the token's name.
                log.info("refused %s: %s", method, why)
                await context.abort(code, message)

            token = bearer_token(metadata)
            if token is None:
                await refuse(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "send `authorization: Bearer <token>`",
                    "no or malformed authorization header",
                )
            principal = self._authenticator.cached(token)
            if principal is Cache.MISS:
                try:
                    principal = await self._authenticator.authenticate(token)
                except (psycopg.Error, OSError) as exc:
                    log.warning("token lookup failed: %s", describe_exception(exc))
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE, "the token store is unavailable; retry"
                    )
            if principal is None:
                await refuse(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "the token is unknown or revoked",
                    f"unknown or revoked token (key id {key_id_of(token) or 'malformed'})",
                )
            if needed is None or not principal.role.allows(needed):
                await refuse(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the token's role ({principal.role}) may not call this method",
                    f"token {principal.name!r} ({principal.role}) may not call it",
                )
            tenant = getattr(request, "tenant_external_id", None)
            granted = isinstance(tenant, str) and principal.may_access(tenant)
            if not granted and method not in TENANTLESS_METHODS:
                await refuse(
                    grpc.StatusCode.PERMISSION_DENIED,
                    "the token is not granted this tenant",
                    f"token {principal.name!r} is not granted the tenant",
                )
            _principal.set(principal)

        return check


def refuse_all(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """Client-streaming methods carry their tenant in later messages; none
    exist, and none is let through unchecked."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this method is not available")

    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            refuse,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this method is not available")
        yield  # pragma: no cover

    return grpc.stream_stream_rpc_method_handler(
        refuse_stream,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
