"""The status rule: how a run's counts become its final status and safeError."""

from __future__ import annotations

from runsvc import safe_errors
from runsvc.model import RunStatus, SafeError


def final_status(succeeded: int, failed: int) -> RunStatus:
    """succeeded: no item failed; failed: every item failed; else partial."""
    if failed == 0:
        return RunStatus.SUCCEEDED
    return RunStatus.FAILED if succeeded == 0 else RunStatus.PARTIAL


def items_failed_error(
    failed: int, total: int, failed_ids: list[str], codes: dict[str, int]
) -> SafeError:
    return SafeError(
        safe_errors.ITEMS_FAILED,
        {
            "failedCount": failed,
            "total": total,
            "failedItemIds": failed_ids[: safe_errors.FAILED_SAMPLE],
            "errorCodes": codes,
        },
    )


def cancelled_error(cancelled: int, failed: int, total: int) -> SafeError:
    """A cancelled run: how many items it never attempted, of how many."""
    return SafeError(
        safe_errors.CANCELLED,
        {"cancelledCount": cancelled, "failedCount": failed, "total": total},
    )
