"""Times every TenantSource call by operation and result, for
`runsvc_source_call_seconds`. It wraps the adapter itself (inside the
retries), so each real call is one observation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runsvc.observe.metrics import worker as metrics

# By class name along the exception's MRO, so that an adapter's subclasses
# (a throttled error is an unavailable one) get the most precise result.
_RESULTS = {
    "SourceThrottled": "throttled",
    "SourceTimeout": "timeout",
    "TimeoutError": "timeout",
    "SourceUnavailable": "unavailable",
    "SourceRejected": "rejected",
}


def call_result(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    for cls in type(error).__mro__:
        result = _RESULTS.get(cls.__name__)
        if result is not None:
            return result
    return "error"


class MeasuredSource:
    """Any TenantSource, its public methods timed; otherwise the same object."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._source, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        return _timed(name, attribute)


def _timed(operation: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return call(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            metrics.source_call_seconds.labels(operation, call_result(error)).observe(
                time.perf_counter() - started
            )

    return timed
