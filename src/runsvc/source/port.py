"""The TenantSource port and the errors an adapter may raise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg_pool import ConnectionPool


@dataclass(frozen=True, slots=True)
class LivePolicy:
    policy_id: str
    policy_type: str
    display_name: str
    payload: dict[str, Any]


class SourceUnavailable(Exception):
    """A transient failure (throttling, timeout): the call may be retried."""


class SourceRejected(Exception):
    """A permanent refusal of one call; `code` is a stable, safe error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class TenantSource(Protocol):
    def list_policy_ids(self, tenant: str) -> list[str]:
        """Ids of every live policy of the tenant, in a stable order."""
        ...

    def get_policy(self, tenant: str, policy_id: str) -> LivePolicy | None:
        """The live policy, or None when the tenant has no such policy."""
        ...

    def put_policy(self, tenant: str, policy: LivePolicy) -> None:
        """Creates or replaces the live policy."""
        ...


# Builds an adapter; the worker passes its connection pool.
TenantSourceFactory = Callable[[ConnectionPool], TenantSource]
