"""What can go wrong talking to Graph, in the Graph client's own words; the
adapter turns these into the TenantSource port's errors."""

from __future__ import annotations


class GraphUnavailable(Exception):
    """Transient: the same call may succeed later (network, 5xx)."""


class GraphTimeout(GraphUnavailable):
    """The call's deadline came before Graph answered."""


class GraphThrottled(GraphUnavailable):
    """The tenant's turn comes only after the call's deadline (a pause or an
    empty budget); `retry_after` says in how many seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"tenant throttled for {retry_after:.1f}s more")
        self.retry_after = retry_after


class GraphRefused(Exception):
    """A permanent refusal; `code` is a stable code that is safe to show."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
