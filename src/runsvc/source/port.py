"""The TenantSource port: the batched contract between runsvc and a tenant's
live configuration (Microsoft Graph in production), and its typed errors.

How runsvc calls an adapter
---------------------------
- One adapter instance per worker process, called from several threads at
  once: an adapter must be thread-safe.
- Every call works on a batch (at most a few hundred ids or policies; the
  worker sizes batches so that one takes about a second). An adapter may
  split a batch further (Graph's JSON `$batch` carries 20 requests).
- Every call carries a `Deadline`. The adapter should give up by then
  (use `deadline.remaining()` as its network timeout) and raise
  `SourceTimeout`, or answer the items it finished and report the others
  as transient `ItemFailure`s. The worker stops waiting at the deadline in
  any case: a call still running then is abandoned (left to finish on its
  own thread, its answer ignored) and counts as `SourceTimeout`.
- No call is ever made inside a database transaction that holds a run's
  row lock: the worker reads from the source, then records the batch in
  one short transaction.

Per-item results and errors
---------------------------
- `get_policies` and `put_policies` answer with a mapping that has one
  entry per id asked for. An entry is the result (a `LivePolicy`, `None`
  for "no such policy", or `WRITTEN`), or an `ItemFailure` for that item
  alone: `transient=True` (throttled, timed out, 5xx for that request)
  means the worker may ask again for that item; otherwise the item fails
  with the failure's `code`. An id missing from the mapping counts as a
  transient failure.
- Raising fails the whole call: `SourceUnavailable` (and its subclasses
  `SourceThrottled`, `SourceTimeout`) is transient, so the worker retries
  the call with backoff and jitter, then fails its items with
  SOURCE_UNAVAILABLE / SOURCE_TIMEOUT; `SourceRejected` is a permanent
  refusal of every item of the call (for example TENANT_NOT_FOUND, consent
  revoked) and fails them with its `code`. Any other exception fails the
  call's items with INTERNAL_ERROR (its text is logged redacted, never
  stored).
- Codes are stable, safe, machine-readable words: `[A-Z][A-Z0-9_]*`, at
  most 64 characters. Anything else is replaced by INTERNAL_ERROR. Codes
  never carry secrets, payloads or exception text.

Writes are at-least-once
------------------------
A worker that dies or is stopped after `put_policies` returned, but before
it recorded the outcome, leaves the batch to the next worker, which writes
it again; an abandoned call may land after its deadline. So `put_policies`
must be idempotent: writing the same policy twice leaves the tenant as
writing it once (a PUT/PATCH of the whole object, never an append).

Policy identity
---------------
`LivePolicy.policy_id` is the adapter's id of the policy: stable, unique
within the tenant across every kind of policy, at most 256 characters.
`LivePolicy.policy_type` names the kind of policy as the adapter needs it
to address the policy again; runsvc stores it in every snapshot and hands
it back unchanged in `put_policies` (a Graph adapter puts the collection
here, such as `deviceConfigurations`, `deviceCompliancePolicies` or
`configurationPolicies`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from psycopg_pool import ConnectionPool

from runsvc.model import LivePolicy


@dataclass(frozen=True, slots=True)
class Deadline:
    """The moment (on the `time.monotonic()` clock) by which a call returns."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left, never negative: use it as the network timeout."""
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def earlier(self, other: Deadline | None) -> Deadline:
        return self if other is None or self.at <= other.at else other


@dataclass(frozen=True, slots=True)
class PolicyIdPage:
    """One page of a tenant's policy ids, and where the next one starts."""

    ids: list[str]
    # Opaque to runsvc: passed back to get the next page; None after the last.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """The failure of one item of a batch call (the others may succeed)."""

    code: str
    # True: asking again for this item may succeed (throttled, timed out).
    transient: bool = False


class _Written:
    def __repr__(self) -> str:
        return "WRITTEN"


# put_policies' result for an item that is now live as given.
WRITTEN: Final = _Written()

GetResult = LivePolicy | None | ItemFailure
PutResult = _Written | ItemFailure


class SourceError(Exception):
    """Base of the errors an adapter raises for a whole call."""


class SourceUnavailable(SourceError):
    """Transient: the call may succeed when retried (network, 5xx, throttling).

    `retry_after`, when set, is the least number of seconds to wait first
    (an HTTP Retry-After)."""

    def __init__(self, message: str = "source unavailable", *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class SourceThrottled(SourceUnavailable):
    """The tenant's budget is used up (HTTP 429). The worker waits
    `retry_after` (or its own backoff) and tries again; a throttled call does
    not use up the call's retries, only its deadline."""


class SourceTimeout(SourceUnavailable):
    """The call's deadline passed before it finished (a transient error)."""


class SourceRejected(SourceError):
    """A permanent refusal of the whole call; `code` is a stable, safe code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class TenantSource(Protocol):
    def list_policy_ids(
        self, tenant: str, *, cursor: str | None, deadline: Deadline
    ) -> PolicyIdPage:
        """One page of the ids of every live policy of the tenant, in a
        stable order; `cursor` is None for the first page, then the page's
        `next_cursor`. A page may be empty only when it is the last."""
        ...

    def get_policies(
        self, tenant: str, policy_ids: Sequence[str], *, deadline: Deadline
    ) -> Mapping[str, GetResult]:
        """The live policies of the given ids: for each id its LivePolicy,
        None when the tenant has no such policy, or an ItemFailure."""
        ...

    def put_policies(
        self, tenant: str, policies: Sequence[LivePolicy], *, deadline: Deadline
    ) -> Mapping[str, PutResult]:
        """Creates or replaces each policy (keyed by policy_id in the
        answer): WRITTEN, or an ItemFailure (a permanent one when the
        source refuses the payload). Idempotent: see the module docstring."""
        ...


# Builds an adapter; the worker passes its connection pool (the built-in
# adapter uses it; others may ignore it).
TenantSourceFactory = Callable[[ConnectionPool], TenantSource]
