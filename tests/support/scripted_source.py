"""A TenantSource for tests, standing where Microsoft Graph would: the
built-in adapter with scripted delays and failures, configured by env vars
of the worker process (RUNSVC_TENANT_SOURCE=tests.support.scripted_source:create).

RUNSVC_TEST_SOURCE_DELAY        seconds each get_policies call takes
RUNSVC_TEST_SOURCE_REJECT       policy ids whose write put_policies refuses (comma list)
RUNSVC_TEST_SOURCE_TRANSIENT    how many times a call that reads a policy fails transiently
                                (SourceUnavailable) before that policy reads well
RUNSVC_TEST_SOURCE_CRASH        policy ids whose get_policies call raises an unexpected
                                error whose text holds a secret
RUNSVC_TEST_SOURCE_CRASH_LIST   "1": list_policy_ids raises that error too (a run-level
                                failure, before any item exists)
RUNSVC_TEST_SOURCE_GONE         policy id prefixes (comma list) that get_policies finds
                                nowhere: policies listed, then deleted in the tenant
RUNSVC_TEST_SOURCE_HANG         policy ids whose get_policies call never returns (it
                                ignores its deadline, as a broken adapter would)
RUNSVC_TEST_SOURCE_BAD_PAYLOAD  policy ids read back with a payload Postgres refuses
                                (a NUL character): their batch statement fails
RUNSVC_TEST_SOURCE_BOOT_DELAY   seconds the factory takes (a slow worker boot)
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from psycopg_pool import ConnectionPool

from runsvc.model import LivePolicy
from runsvc.source.port import (
    Deadline,
    GetResult,
    ItemFailure,
    PolicyIdPage,
    PutResult,
    SourceUnavailable,
)
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
        self.hang = _ids("RUNSVC_TEST_SOURCE_HANG")
        self.bad_payload = _ids("RUNSVC_TEST_SOURCE_BAD_PAYLOAD")
        self.transient = int(os.environ.get("RUNSVC_TEST_SOURCE_TRANSIENT", "0"))
        self.crash_list = os.environ.get("RUNSVC_TEST_SOURCE_CRASH_LIST") == "1"
        self.gone = tuple(_ids("RUNSVC_TEST_SOURCE_GONE"))
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._never = threading.Event()

    def list_policy_ids(
        self, tenant: str, *, cursor: str | None, deadline: Deadline
    ) -> PolicyIdPage:
        if self.crash_list:
            raise RuntimeError(SECRET_TEXT)
        return super().list_policy_ids(tenant, cursor=cursor, deadline=deadline)

    def get_policies(
        self, tenant: str, policy_ids: Sequence[str], *, deadline: Deadline
    ) -> Mapping[str, GetResult]:
        if self.delay:
            time.sleep(self.delay)
        if self.hang.intersection(policy_ids):
            self._never.wait()
        if self.crash.intersection(policy_ids):
            raise RuntimeError(SECRET_TEXT)
        with self._lock:
            failing = [p for p in policy_ids if self._failures[p] < self.transient]
            self._failures.update(failing)
        if failing:
            raise SourceUnavailable("throttled")
        answer = dict(super().get_policies(tenant, policy_ids, deadline=deadline))
        if self.gone:
            answer.update({p: None for p in policy_ids if p.startswith(self.gone)})
        for policy_id in self.bad_payload.intersection(policy_ids):
            policy = answer[policy_id]
            if isinstance(policy, LivePolicy):
                answer[policy_id] = LivePolicy(
                    policy.policy_id, policy.policy_type, policy.display_name, {"bad": "\x00"}
                )
        return answer

    def put_policies(
        self, tenant: str, policies: Sequence[LivePolicy], *, deadline: Deadline
    ) -> Mapping[str, PutResult]:
        accepted = [p for p in policies if p.policy_id not in self.reject]
        answer: dict[str, PutResult] = dict(
            super().put_policies(tenant, accepted, deadline=deadline) if accepted else {}
        )
        for policy in policies:
            if policy.policy_id in self.reject:
                answer[policy.policy_id] = ItemFailure("SOURCE_REJECTED")
        return answer


def create(pool: ConnectionPool) -> ScriptedSource:
    time.sleep(float(os.environ.get("RUNSVC_TEST_SOURCE_BOOT_DELAY", "0")))
    return ScriptedSource(pool)
