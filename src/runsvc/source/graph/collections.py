"""The Intune collections runsvc backs up and restores, and what Microsoft's
documentation says about each: API version, name property, how to read an
object whole, which properties the service owns, and how to write it back.

A policy's payload is the object as Graph returns it, less what the service
owns (ids, timestamps, versions, counts, OData annotations other than
@odata.type): the same configuration always hashes the same, and the
payload can be written back as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_ACTIONS = "scheduledActionsForRule"
_ACTION_ITEMS = "scheduledActionConfigurations"


@dataclass(frozen=True)
class Write:
    """One Graph request that writes (method, URL relative to the version)."""

    method: str
    url: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Collection:
    # The collection's name in Graph; runsvc keeps it as the policy's type.
    name: str
    version: str
    name_property: str
    # $expand that reads the object whole (navigation properties included).
    expand: str | None = None
    read_only: frozenset[str] = frozenset(
        {"id", "createdDateTime", "lastModifiedDateTime", "version"}
    )
    # Navigation properties the service numbers itself (their ids are its own).
    numbered: tuple[str, ...] = ()
    # Navigation properties a PATCH may not carry; they change otherwise.
    not_patchable: tuple[str, ...] = field(default=())

    @property
    def path(self) -> str:
        return f"/deviceManagement/{self.name}"

    def item_url(self, object_id: str) -> str:
        url = f"{self.path}/{object_id}"
        return f"{url}?$expand={self.expand}" if self.expand else url

    def list_url(self, page_size: int) -> str:
        return f"{self.path}?$select=id&$top={page_size}"

    def payload(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The object without what the service owns."""
        return {
            key: _without_ids(value) if key in self.numbered else value
            for key, value in obj.items()
            if key not in self.read_only and not _annotation(key)
        }

    def display_name(self, payload: dict[str, Any]) -> str:
        return str(payload.get(self.name_property) or "")

    def updates(self, object_id: str, payload: dict[str, Any]) -> list[Write]:
        """The writes that make the live object equal to `payload`: PATCH, and
        for a compliance policy the documented action that replaces its
        scheduled actions (which PATCH cannot change). Writing twice leaves
        the object as writing once."""
        body = self.payload(payload)
        patch = {k: v for k, v in body.items() if k not in self.not_patchable}
        writes = [Write("PATCH", f"{self.path}/{object_id}", patch)]
        if _ACTIONS in self.not_patchable and _ACTIONS in body:
            writes.append(
                Write(
                    "POST",
                    f"{self.path}/{object_id}/scheduleActionsForRules",
                    {"deviceComplianceScheduledActionForRules": body[_ACTIONS]},
                )
            )
        return writes

    def create(self, payload: dict[str, Any]) -> Write:
        """The POST that makes the object anew (it gets a new id)."""
        return Write("POST", self.path, self.payload(payload))


COLLECTIONS: dict[str, Collection] = {
    c.name: c
    for c in (
        Collection(name="deviceConfigurations", version="v1.0", name_property="displayName"),
        # Created together with its scheduled actions, which a backup must
        # therefore capture; PATCH cannot change them (scheduleActionsForRules can).
        Collection(
            name="deviceCompliancePolicies",
            version="v1.0",
            name_property="displayName",
            expand=f"{_ACTIONS}($expand={_ACTION_ITEMS})",
            numbered=(_ACTIONS,),
            not_patchable=(_ACTIONS,),
        ),
        # Settings catalog: beta only, `name` rather than `displayName`, its
        # settings only through $expand=settings.
        Collection(
            name="configurationPolicies",
            version="beta",
            name_property="name",
            expand="settings",
            read_only=frozenset(
                {"id", "createdDateTime", "lastModifiedDateTime", "settingCount", "isAssigned"}
            ),
            numbered=("settings",),
        ),
    )
}


def _annotation(key: str) -> bool:
    """OData annotations (@odata.context, settings@odata.context, ...), but
    not @odata.type: a create needs it to know the object's derived type."""
    return "@" in key and key != "@odata.type"


def _without_ids(value: Any) -> Any:
    """Nested objects without their service-given ids and annotations."""
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "id" and not _annotation(k)}
    return value
