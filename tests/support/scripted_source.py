"""A TenantSource for tests, standing where Microsoft Graph would: the
built-in adapter with scripted delays and failures, configured by env vars
of the worker process (RUNSVC_TENANT_SOURCE=tests.support.scripted_source:create).

RUNSVC_TEST_SOURCE_DELAY        seconds each get_policy takes
RUNSVC_TEST_SOURCE_REJECT       policy ids whose put_policy is rejected (comma list)
RUNSVC_TEST_SOURCE_TRANSIENT    how many times each get_policy fails transiently first
RUNSVC_TEST_SOURCE_CRASH        policy ids whose get_policy raises an unexpected error
                                whose text holds a secret
RUNSVC_TEST_SOURCE_CRASH_LIST   "1": list_policy_ids raises that error too (a run-level
                                failure, before any item exists)
RUNSVC_TEST_SOURCE_GONE         policy id prefixes (comma list) whose get_policy finds
                                nothing: policies listed, then deleted in the tenant
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

from psycopg_pool import ConnectionPool

from runsvc.source.port import LivePolicy, SourceRejected, SourceUnavailable
from runsvc.source.postgres import PostgresTenantSource

SECRET_TEXT = "connect failed: postgresql://admin:hunter2-secret@db.internal/x Bearer tok_SECRET"


def _ids(name: str) -> set[str]:
    return {part for part in os.environ.get(name, "").split(",") if part}


class ScriptedSource(PostgresTenantSource):
    def __init__(self, pool: ConnectionPool) -> None:
        super().__init__(pool)
        self.delay = float(os.environ.get("RUNSVC_TEST_SOURCE_DELAY", "0"))
        self.reject = _ids("RUNSVC_TEST_SOURCE_REJECT")
        self.crash = _ids("RUNSVC_TEST_SOURCE_CRASH")
        self.transient = int(os.environ.get("RUNSVC_TEST_SOURCE_TRANSIENT", "0"))
        self.crash_list = os.environ.get("RUNSVC_TEST_SOURCE_CRASH_LIST") == "1"
        self.gone = tuple(_ids("RUNSVC_TEST_SOURCE_GONE"))
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()

    def list_policy_ids(self, tenant: str) -> list[str]:
        if self.crash_list:
            raise RuntimeError(SECRET_TEXT)
        return super().list_policy_ids(tenant)

    def get_policy(self, tenant: str, policy_id: str) -> LivePolicy | None:
        if self.delay:
            time.sleep(self.delay)
        if policy_id in self.crash:
            raise RuntimeError(SECRET_TEXT)
        if self.gone and policy_id.startswith(self.gone):
            return None
        with self._lock:
            if self._failures[policy_id] < self.transient:
                self._failures[policy_id] += 1
                raise SourceUnavailable("throttled")
        return super().get_policy(tenant, policy_id)

    def put_policy(self, tenant: str, policy: LivePolicy) -> None:
        if policy.policy_id in self.reject:
            raise SourceRejected("SOURCE_REJECTED")
        super().put_policy(tenant, policy)


def create(pool: ConnectionPool) -> ScriptedSource:
    return ScriptedSource(pool)
