"""API tokens: their format, roles and grants, and the admin operations
behind `runsvc token` (create, list, revoke) and `runsvc dev`.

A token reads `rsvc_<key_id>_<secret>`: key_id (16 hex digits) finds the
row, the secret (256 random bits) proves possession. Only SHA-256 of the
whole token is stored; hashes are compared with hmac.compare_digest. The
prefix makes leaked tokens easy to spot (and to redact from logs).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from runsvc.store import auth as store
from runsvc.store.auth import TokenNameTaken, TokenRow
from runsvc.validation import InvalidArgument, check_tenant

PREFIX = "rsvc_"
TOKEN_PATTERN = re.compile(r"rsvc_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}")

__all__ = [
    "Principal",
    "Role",
    "TokenError",
    "TokenInfo",
    "TokenNameTaken",
    "create_token",
    "hash_token",
    "key_id_of",
    "list_tokens",
    "principal_from_row",
    "revoke_token",
    "verify_token",
]


class TokenError(Exception):
    """An admin request that cannot be done; the message says why."""


class Role(enum.StrEnum):
    VIEWER = "viewer"  # may read and watch
    OPERATOR = "operator"  # may also start (and cancel) runs

    def allows(self, needed: Role) -> bool:
        return self is Role.OPERATOR or needed is Role.VIEWER


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name, role and tenant grants."""

    token_id: int
    name: str
    role: Role
    all_tenants: bool
    tenants: frozenset[str]

    def may_access(self, tenant: str) -> bool:
        return self.all_tenants or tenant in self.tenants


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What `runsvc token list` shows: never the secret, never its hash."""

    name: str
    role: str
    grants: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def generate_token() -> tuple[str, str]:
    """A new token and its key id."""
    key_id = secrets.token_hex(8)
    return f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}", key_id


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def key_id_of(token: str) -> str | None:
    """The key id of a well-formed token; None for anything else."""
    match = TOKEN_PATTERN.fullmatch(token)
    return match[1] if match else None


def principal_from_row(row: TokenRow, presented: str) -> Principal | None:
    """The row's principal if the presented token is the one it was made for."""
    if not hmac.compare_digest(row.secret_hash, hash_token(presented)):
        return None
    return Principal(
        token_id=row.id,
        name=row.name,
        role=Role(row.role),
        all_tenants=row.all_tenants,
        tenants=frozenset(row.tenants),
    )


def _check_request(name: str, tenants: Sequence[str] | None) -> list[str] | None:
    if not NAME_PATTERN.fullmatch(name):
        raise TokenError(
            "a token name is 1-64 characters: letters, digits and . _ @ : - "
            "(starting with a letter or digit)"
        )
    if tenants is None:
        return None
    if not tenants:
        raise TokenError("grant at least one tenant, or all tenants")
    for tenant in tenants:
        try:
            check_tenant(tenant, "tenant")
        except InvalidArgument as error:
            raise TokenError(str(error)) from None
    return list(dict.fromkeys(tenants))


def create_token(
    conninfo: str, *, name: str, role: Role | str, tenants: Sequence[str] | None
) -> str:
    """Creates a token and returns it: the only time the secret is seen.

    `tenants=None` grants every tenant."""
    role = Role(role)
    grants = _check_request(name, tenants)
    token, key_id = generate_token()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            store.token_insert(
                conn,
                name=name,
                key_id=key_id,
                secret_hash=hash_token(token),
                role=role.value,
                tenants=grants,
            )
        except TokenNameTaken:
            raise TokenError(f"an active token named {name!r} exists; revoke it first") from None
    return token


def verify_token(conninfo: str, token: str) -> Principal | None:
    """The principal of an active token; None if unknown, revoked or malformed."""
    key_id = key_id_of(token)
    if key_id is None:
        return None
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = store.token_get_active_by_key_sync(conn, key_id)
    return principal_from_row(row, token) if row else None


def list_tokens(conninfo: str) -> list[TokenInfo]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = store.token_list(conn)
    return [
        TokenInfo(
            name=row["name"],
            role=row["role"],
            grants="*" if row["all_tenants"] else ",".join(row["tenants"]),
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
        )
        for row in rows
    ]


def revoke_token(conninfo: str, name: str) -> bool:
    """Revokes the active token of that name; False when there is none."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return store.token_revoke(conn, name)
