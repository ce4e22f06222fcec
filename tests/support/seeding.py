"""Seeds a tenant of its own for each test, so tests never see each other's data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from runsvc.seed import seed


@dataclass(frozen=True)
class SeededTenant:
    external_id: str
    policy_ids: list[str]
    backup_set_id: str


def policy_payload(index: int) -> dict:
    return {"setting": f"value-{index}", "enabled": index % 2 == 0, "level": index}


def seed_tenant(
    database_url: str, *, policies: int = 5, prefix: str = "t", external_id: str | None = None
) -> SeededTenant:
    """A tenant with `policies` live policies and one backup set; a fresh
    unique name unless `external_id` names it."""
    external_id = external_id or f"{prefix}-{uuid.uuid4().hex[:12]}"
    policy_ids = [f"pol-{i:05d}" for i in range(policies)]
    seed(
        database_url,
        {
            "tenants": [
                {
                    "externalId": external_id,
                    "policies": [
                        {
                            "id": pid,
                            "type": "deviceConfiguration",
                            "displayName": f"Policy {i}",
                            "payload": policy_payload(i),
                        }
                        for i, pid in enumerate(policy_ids)
                    ],
                    "backupSets": [{"id": "bs-main", "name": "Main backup set"}],
                }
            ]
        },
    )
    return SeededTenant(external_id, policy_ids, "bs-main")
