"""Checks of what callers send, before anything is written. Each violation
names the field (its proto path) and says what is wrong."""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass

from runsvc.model import RunType

MAX_TENANT_LEN = 128
MAX_TARGET_LEN = 256
MAX_PAYLOAD_HASH_LEN = 128
MAX_ITEM_ID_LEN = 256


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(Exception):
    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def _text(
    violations: list[FieldViolation], field: str, value: str, *, max_len: int, required: bool
) -> None:
    if required and not value:
        violations.append(FieldViolation(field, "is required"))
    elif len(value) > max_len:
        violations.append(FieldViolation(field, f"must be at most {max_len} characters"))
    elif _has_control(value):
        violations.append(FieldViolation(field, "must not contain control characters"))


def _run_type(violations: list[FieldViolation], value: str) -> None:
    if value not in RunType.__members__.values():
        known = ", ".join(sorted(t.value for t in RunType))
        shown = value[:64] if not _has_control(value) else "(unprintable)"
        violations.append(FieldViolation("run_type", f"unknown run type {shown!r}; one of {known}"))


def check_address(tenant: str, run_type: str) -> None:
    """The tenant and run type every RPC carries."""
    violations: list[FieldViolation] = []
    _text(violations, "tenant_external_id", tenant, max_len=MAX_TENANT_LEN, required=True)
    _run_type(violations, run_type)
    if violations:
        raise InvalidArgument(violations)


def check_tenant(tenant: str, field: str = "tenant_external_id") -> None:
    """A tenant id on its own (token grants, audit queries)."""
    violations: list[FieldViolation] = []
    _text(violations, field, tenant, max_len=MAX_TENANT_LEN, required=True)
    if violations:
        raise InvalidArgument(violations)


def check_run_id(value: str) -> uuid.UUID:
    try:
        if len(value) <= 36:
            return uuid.UUID(value)
    except ValueError:
        pass
    raise InvalidArgument([FieldViolation("run_id", "must be a run id (a UUID)")])


@dataclass(frozen=True, slots=True)
class StartOptions:
    target_object_id: str | None
    payload_hash: str | None
    item_ids: list[str] | None  # deduplicated, order kept; None: default set


def check_start_options(
    target_object_id: str | None,
    payload_hash: str | None,
    item_ids: list[str] | None,
    *,
    max_item_ids: int,
) -> StartOptions:
    violations: list[FieldViolation] = []
    if target_object_id is not None:
        _text(
            violations,
            "options.target_object_id",
            target_object_id,
            max_len=MAX_TARGET_LEN,
            required=False,
        )
    if payload_hash is not None:
        _text(
            violations,
            "options.payload_hash",
            payload_hash,
            max_len=MAX_PAYLOAD_HASH_LEN,
            required=False,
        )
    unique: list[str] | None = None
    if item_ids is not None:
        if len(item_ids) > max_item_ids:
            violations.append(
                FieldViolation(
                    "options.item_ids", f"must hold at most {max_item_ids} ids, got {len(item_ids)}"
                )
            )
        else:
            for index, item_id in enumerate(item_ids):
                _text(
                    violations,
                    f"options.item_ids[{index}]",
                    item_id,
                    max_len=MAX_ITEM_ID_LEN,
                    required=True,
                )
                if len(violations) >= 10:
                    break  # enough to act on; the list may be long
            unique = list(dict.fromkeys(item_ids))
    if violations:
        raise InvalidArgument(violations)
    return StartOptions(target_object_id, payload_hash, unique)
