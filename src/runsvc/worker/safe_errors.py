"""What a failed or partial run tells its caller: codes, never raw text."""

from __future__ import annotations

import re

from runsvc.model import SafeError

# How many failed item ids safeError.context lists.
FAILED_SAMPLE = 20

ITEMS_FAILED = "ITEMS_FAILED"
INTERNAL_ERROR = "INTERNAL_ERROR"
SOURCE_UNAVAILABLE = "SOURCE_UNAVAILABLE"
ATTEMPTS_EXHAUSTED = "RUN_ATTEMPTS_EXHAUSTED"
TENANT_NOT_FOUND = "TENANT_NOT_FOUND"
# CancelRun: the run's code, and that of every item it left unattempted.
CANCELLED = "CANCELLED"

_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def safe_code(code: str) -> str:
    """A code from a handler or adapter, if it looks like one; else generic."""
    return code if _CODE.match(code or "") else INTERNAL_ERROR


def items_failed_error(
    failed: int, total: int, failed_ids: list[str], codes: dict[str, int]
) -> SafeError:
    return SafeError(
        ITEMS_FAILED,
        {
            "failedCount": failed,
            "total": total,
            "failedItemIds": failed_ids[:FAILED_SAMPLE],
            "errorCodes": codes,
        },
    )
