"""Opaque page tokens (AIP-158): the keyset position after a page's last
entry and a fingerprint of the listing it belongs to, as base64url JSON. A
token continues only its own listing (same tenant, run and filters)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from runsvc.validation import FieldViolation, InvalidArgument

FIELD = "page_token"


def listing(*parts: Any) -> str:
    """A short fingerprint of what is being listed (tenant, filters, ...)."""
    canonical = json.dumps(parts, default=str, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def encode(position: list[Any], of_listing: str) -> str:
    raw = json.dumps({"p": position, "l": of_listing}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode(token: str, of_listing: str) -> list[Any] | None:
    """The position in a token from encode(); None for an empty token (the
    first page). InvalidArgument for anything else, or another listing's."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
        position, owner = value["p"], value["l"]
    except (ValueError, binascii.Error, KeyError, TypeError, UnicodeDecodeError):
        raise bad_position() from None
    if owner != of_listing or not isinstance(position, list):
        raise InvalidArgument(
            [FieldViolation(FIELD, "belongs to another listing (other filters or run)")]
        )
    return position


def bad_position() -> InvalidArgument:
    return InvalidArgument([FieldViolation(FIELD, "is not a page token of this service")])
