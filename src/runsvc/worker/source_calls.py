"""Calls the TenantSource for a run: each call on a thread of its own with a
deadline, transient failures retried with backoff and jitter (tenacity), a
failing batch split so that one bad item fails alone, and every answer
turned into one final result per item."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from runsvc import safe_errors
from runsvc.model import LivePolicy
from runsvc.redact import describe_exception
from runsvc.source.port import (
    Deadline,
    GetResult,
    ItemFailure,
    PolicyIdPage,
    PutResult,
    SourceRejected,
    SourceThrottled,
    SourceTimeout,
    SourceUnavailable,
    TenantSource,
)
from runsvc.worker.guard import Guard, StopNow
from runsvc.worker.lease import LeaseLost

log = logging.getLogger(__name__)

T = TypeVar("T")

# However often a tenant is throttled, one call waits at most this long in all.
MAX_THROTTLED_SECONDS = 300.0
_MISSING = ItemFailure(safe_errors.SOURCE_UNAVAILABLE, transient=True)


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """How source calls are bounded and retried (RUNSVC_SOURCE_*)."""

    timeout: float  # seconds one call may take
    attempts: int  # tries of a call that fails transiently
    base_delay: float  # first backoff, doubled each try, with jitter


class _ItemsStillTransient(SourceUnavailable):
    """Some items of the call failed transiently: ask again for those."""


class _CallFailed(Exception):
    """The call failed as a whole (after its retries) with `code`."""

    def __init__(self, code: str, *, transient: bool) -> None:
        super().__init__(code)
        self.code = code
        self.transient = transient


def _failure_code(exc: BaseException) -> str:
    if isinstance(exc, SourceTimeout):
        return safe_errors.SOURCE_TIMEOUT
    return safe_errors.SOURCE_UNAVAILABLE


class GuardedSource:
    """One run's view of the TenantSource (its tenant, its guard)."""

    def __init__(
        self, source: TenantSource, tenant: str, guard: Guard, policy: SourcePolicy
    ) -> None:
        self._source = source
        self._tenant = tenant
        self._guard = guard
        self._policy = policy

    # --- the calls handlers make ------------------------------------------

    def list_page(self, cursor: str | None) -> PolicyIdPage:
        """One page of policy ids; raises SourceRejected (permanent) or
        SourceUnavailable (retries used up): the run cannot list its items."""

        def call(deadline: Deadline) -> PolicyIdPage:
            return self._source.list_policy_ids(self._tenant, cursor=cursor, deadline=deadline)

        return self._retrying(lambda: self._on_thread(call))

    def get(self, policy_ids: Sequence[str]) -> dict[str, LivePolicy | ItemFailure | None]:
        """One final result per id: the policy, None (no such policy), or the
        ItemFailure that fails the item (retries used up)."""

        def call(keys: Sequence[str], deadline: Deadline) -> Mapping[str, GetResult]:
            return self._source.get_policies(self._tenant, keys, deadline=deadline)

        return self._per_item(call, list(policy_ids), known_failed=None)

    def put(self, policies: Sequence[LivePolicy]) -> dict[str, PutResult]:
        """Writes the policies: WRITTEN or a final ItemFailure per policy id."""
        by_id = {policy.policy_id: policy for policy in policies}

        def call(keys: Sequence[str], deadline: Deadline) -> Mapping[str, PutResult]:
            return self._source.put_policies(
                self._tenant, [by_id[k] for k in keys], deadline=deadline
            )

        return self._per_item(call, list(by_id), known_failed=None)

    # --- machinery ----------------------------------------------------------

    def _on_thread(self, call: Callable[[Deadline], T]) -> T:
        """Runs the call on a daemon thread and waits until its deadline: a
        call that hangs is abandoned there (SourceTimeout), never waited for."""
        deadline = self._guard.limit(Deadline.after(self._policy.timeout))
        done = threading.Event()
        answer: dict[str, Any] = {}

        def target() -> None:
            try:
                answer["value"] = call(deadline)
            except BaseException as exc:  # handed to the waiting thread
                answer["error"] = exc
            finally:
                done.set()

        threading.Thread(target=target, name="source-call", daemon=True).start()
        if not self._guard.wait(done, deadline):
            self._guard.check()  # the grace period ended: abandon the batch, not the items
            raise SourceTimeout("no answer by the deadline")
        if "error" in answer:
            raise answer["error"]
        return answer["value"]

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Retries transient failures with exponential backoff and jitter;
        a throttled call does not use up a try (only MAX_THROTTLED_SECONDS)."""
        policy = self._policy
        tries = {"failed": 0, "throttled_for": 0.0}
        backoff = tenacity.wait_exponential_jitter(
            initial=policy.base_delay, max=max(policy.base_delay, 30.0), jitter=policy.base_delay
        )

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            delay = backoff(state)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after:
                delay = max(delay, retry_after)
            if isinstance(exc, SourceThrottled):
                tries["throttled_for"] += delay
            return delay

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, SourceThrottled):
                return tries["throttled_for"] >= MAX_THROTTLED_SECONDS
            tries["failed"] += 1
            return tries["failed"] >= policy.attempts

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(SourceUnavailable),
            stop=stop,
            wait=wait,
            sleep=self._guard.sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _per_item(
        self,
        call: Callable[[Sequence[str], Deadline], Mapping[str, Any]],
        keys: list[str],
        *,
        known_failed: _CallFailed | None,
    ) -> dict[str, Any]:
        """Final results for `keys`. A call that fails as a whole is split in
        halves, so that one bad item fails alone; when both halves fail too
        the cause is not an item (an outage), and the rest fail together."""
        if not keys:
            return {}
        if known_failed is None:
            try:
                return self._once_with_retries(call, keys)
            except _CallFailed as failed:
                known_failed = failed
        if len(keys) == 1:
            failure = ItemFailure(known_failed.code, transient=known_failed.transient)
            return dict.fromkeys(keys, failure)
        middle = len(keys) // 2
        halves = [keys[:middle], keys[middle:]]
        results: dict[str, Any] = {}
        failures: list[tuple[list[str], _CallFailed]] = []
        for half in halves:
            try:
                results.update(self._once_with_retries(call, half))
            except _CallFailed as failed:
                failures.append((half, failed))
        if len(failures) == 2 and known_failed.transient:
            # Neither half got through: an outage, not one item. Give up.
            for half, failed in failures:
                results.update(dict.fromkeys(half, ItemFailure(failed.code, transient=True)))
            return results
        for half, failed in failures:
            results.update(self._per_item(call, half, known_failed=failed))
        return results

    def _once_with_retries(
        self, call: Callable[[Sequence[str], Deadline], Mapping[str, Any]], keys: list[str]
    ) -> dict[str, Any]:
        """One call (retried), with per-item transient failures asked again."""
        results: dict[str, Any] = {}
        pending = list(keys)

        def attempt() -> None:
            nonlocal pending
            answer = self._on_thread(lambda deadline: call(pending, deadline))
            still = []
            for key in pending:
                result = answer.get(key, _MISSING)
                if isinstance(result, ItemFailure):
                    result = ItemFailure(safe_errors.safe_code(result.code), result.transient)
                    if result.transient:
                        still.append(key)
                results[key] = result
            pending = still
            if pending:
                raise _ItemsStillTransient("some items failed transiently")

        try:
            self._retrying(attempt)
        except _ItemsStillTransient:
            pass  # those items keep their own transient failure as their result
        except SourceUnavailable as exc:
            if not results:
                raise _CallFailed(_failure_code(exc), transient=True) from None
            for key in pending:  # earlier tries answered the others
                results[key] = ItemFailure(_failure_code(exc), transient=True)
        except (StopNow, LeaseLost):
            raise
        except SourceRejected as rejected:
            code = safe_errors.safe_code(rejected.code)
            for key in pending:
                results[key] = ItemFailure(code)
        except Exception as exc:
            log.warning("source call failed: %s", describe_exception(exc))
            if len(pending) == len(keys):
                raise _CallFailed(safe_errors.INTERNAL_ERROR, transient=False) from None
            for key in pending:
                results[key] = ItemFailure(safe_errors.INTERNAL_ERROR)
        return results
