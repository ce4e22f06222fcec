"""The catalogue of safe error codes: what a failed item or run tells its
caller. Handlers, the worker and adapters' answers use these, never raw text."""

from __future__ import annotations

import re

# How many failed item ids safeError.context lists.
FAILED_SAMPLE = 20

# --- run level (safeError.code of a failed or partial run) ----------------
ITEMS_FAILED = "ITEMS_FAILED"  # some or every item failed (context: ids, codes)
TENANT_NOT_FOUND = "TENANT_NOT_FOUND"
TARGET_REQUIRED = "TARGET_REQUIRED"
TARGET_NOT_FOUND = "TARGET_NOT_FOUND"
ITEMS_REQUIRED = "ITEMS_REQUIRED"
ATTEMPTS_EXHAUSTED = "RUN_ATTEMPTS_EXHAUSTED"
CANCELLED = "CANCELLED"  # also the code of every item a cancel left unattempted

# --- item level (run_items.error_code) ------------------------------------
POLICY_NOT_FOUND = "POLICY_NOT_FOUND"
ITEM_NOT_FOUND = "ITEM_NOT_FOUND"
SOURCE_UNAVAILABLE = "SOURCE_UNAVAILABLE"  # transient source errors, retries used up
SOURCE_TIMEOUT = "SOURCE_TIMEOUT"  # source calls past their deadline, retries used up
SOURCE_REJECTED = "SOURCE_REJECTED"  # a refusal the adapter gave no code of its own
INTERNAL_ERROR = "INTERNAL_ERROR"  # anything unexpected (logged redacted)

_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def safe_code(code: str | None) -> str:
    """A code from a handler or adapter, if it looks like one; else generic."""
    return code if code and _CODE.match(code) else INTERNAL_ERROR
