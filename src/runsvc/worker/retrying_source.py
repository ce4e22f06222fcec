"""Retries a TenantSource's transient failures with exponential backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from runsvc.source.port import LivePolicy, SourceUnavailable, TenantSource

T = TypeVar("T")


class RetryingSource:
    def __init__(
        self,
        source: TenantSource,
        *,
        attempts: int,
        base_delay: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._source = source
        self._attempts = attempts
        self._base_delay = base_delay
        self._sleep = sleep

    def _call(self, fn: Callable[[], T]) -> T:
        for attempt in range(self._attempts):
            try:
                return fn()
            except SourceUnavailable:
                if attempt == self._attempts - 1:
                    raise
                self._sleep(self._base_delay * 2**attempt)
        raise AssertionError("unreachable")

    def list_policy_ids(self, tenant: str) -> list[str]:
        return self._call(lambda: self._source.list_policy_ids(tenant))

    def get_policy(self, tenant: str, policy_id: str) -> LivePolicy | None:
        return self._call(lambda: self._source.get_policy(tenant, policy_id))

    def put_policy(self, tenant: str, policy: LivePolicy) -> None:
        self._call(lambda: self._source.put_policy(tenant, policy))
