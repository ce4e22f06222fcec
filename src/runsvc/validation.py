"""Checks of what callers send, before anything is written. The field limits
are the protovalidate rules in the proto (the one copy, enforced here by the
protovalidate library); this module turns their violations into ones that
name the field by its proto path, and adds the checks that need the
server's settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import protovalidate
from buf.validate import validate_pb2
from google.protobuf.message import Message
from tenantpilot.runs.v1 import runs_pb2

# A long list of bad item ids is reported by its first few violations.
MAX_VIOLATIONS = 10


def _field_rules(message: type[Message], field: str) -> validate_pb2.FieldRules:
    options = message.DESCRIPTOR.fields_by_name[field].GetOptions()
    return options.Extensions[validate_pb2.field]


# Read from the proto's rules, for code that checks such ids outside a
# request (the seed file's backup sets) and for the item-id setting's ceiling.
MAX_TARGET_LEN = _field_rules(runs_pb2.RunStartRequest, "target_object_id").string.max_len
MAX_ITEM_IDS = _field_rules(runs_pb2.ItemIdList, "values").repeated.max_items


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(Exception):
    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


_validator = protovalidate.Validator()


def _path(violation: protovalidate.Violation) -> str:
    """The violated field's proto path, `options.item_ids[3]`. ItemIdList is
    the contract's nullable array, so its `values` wrapper leaves no trace.
    A message rule names its field by its id up to the last dot."""
    field = violation.proto.field
    if field is None or not field.elements:
        return violation.proto.rule_id.rpartition(".")[0]
    parts: list[str] = []
    for element in field.elements:
        if not (element.field_name == "values" and parts and parts[-1] == "item_ids"):
            parts.append(element.field_name)
        subscript = element.subscript
        if subscript is not None:
            value = subscript.value
            parts[-1] += f"[{value}]" if isinstance(value, int) else f"[{value!r}]"
    return ".".join(parts)


def check_request(message: Message) -> None:
    """Raises InvalidArgument when the message breaks a rule of the proto."""
    found = _validator.collect_violations(message)
    if found:
        raise InvalidArgument(
            [FieldViolation(_path(v), v.proto.message) for v in found[:MAX_VIOLATIONS]]
        )


def check_tenant(tenant: str, field: str = "tenant_external_id") -> None:
    """A tenant id on its own (token grants), by the proto's rules for it."""
    try:
        check_request(runs_pb2.ListRunsRequest(tenant_external_id=tenant))
    except InvalidArgument as error:
        raise InvalidArgument(
            [FieldViolation(field, v.description) for v in error.violations]
        ) from None


def run_id_of(request: Message) -> uuid.UUID:
    """The run id of a checked request (its rule says it is a UUID)."""
    return uuid.UUID(request.run_id)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class StartOptions:
    target_object_id: str | None
    payload_hash: str | None
    item_ids: list[str] | None  # deduplicated, order kept; None: default set


def start_options(request: runs_pb2.StartRunRequest, *, max_item_ids: int) -> StartOptions:
    """The options of a checked StartRunRequest; `max_item_ids` is the
    server's setting, at most the proto's ceiling."""
    opts = request.options
    item_ids = list(opts.item_ids.values) if opts.HasField("item_ids") else None
    if item_ids is not None and len(item_ids) > max_item_ids:
        raise InvalidArgument(
            [
                FieldViolation(
                    "options.item_ids",
                    f"must contain no more than {max_item_ids} item(s), got {len(item_ids)}",
                )
            ]
        )
    return StartOptions(
        opts.target_object_id if opts.HasField("target_object_id") else None,
        opts.payload_hash if opts.HasField("payload_hash") else None,
        list(dict.fromkeys(item_ids)) if item_ids is not None else None,
    )
