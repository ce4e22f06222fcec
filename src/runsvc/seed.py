"""`runsvc seed FILE.json`: loads tenants, live policies and backup sets.

Format (every key required unless marked optional):

    {"tenants": [{"externalId": "...",
                  "policies": [{"id": "...", "type": "...", "displayName": "...",
                                "payload": {...}}],          # optional
                  "backupSets": [{"id": "...", "name": "..."}]}]}  # optional

Loading is idempotent: tenants, policies and sets are created or updated.
The whole file loads in one transaction, or nothing does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from runsvc.model import LivePolicy
from runsvc.store import domain
from runsvc.validation import MAX_TARGET_LEN, InvalidArgument, check_tenant

# Policies per upsert statement.
_POLICY_BATCH = 1000


class SeedError(Exception):
    """The file does not follow the format; the message says where."""


@dataclass(frozen=True)
class SeedSummary:
    tenants: int
    policies: int
    backup_sets: int


def _object(value: Any, where: str, keys: set[str], optional: set[str] = frozenset()) -> dict:
    if not isinstance(value, dict):
        raise SeedError(f"{where}: must be an object")
    missing = keys - value.keys()
    unknown = value.keys() - keys - optional
    if missing:
        raise SeedError(f"{where}: missing {', '.join(sorted(missing))}")
    if unknown:
        raise SeedError(f"{where}: unknown {', '.join(sorted(unknown))}")
    return value


def _text(value: Any, where: str, max_len: int = 256) -> str:
    if not isinstance(value, str) or not value:
        raise SeedError(f"{where}: must be a non-empty string")
    if len(value) > max_len or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise SeedError(f"{where}: at most {max_len} printable characters")
    return value


def _tenant(value: Any, where: str) -> str:
    """A tenant id by the contract's rules for one (runs.proto)."""
    if not isinstance(value, str) or not value:
        raise SeedError(f"{where}: must be a non-empty string")
    try:
        check_tenant(value, where)
    except InvalidArgument as error:
        raise SeedError(str(error)) from None
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise SeedError(f"{where}: must be an array")
    return value


def parse_seed(document: Any) -> list[tuple[str, list[LivePolicy], list[tuple[str, str]]]]:
    root = _object(document, "$", {"tenants"})
    tenants = []
    for t_index, raw_tenant in enumerate(_list(root["tenants"], "$.tenants")):
        where = f"$.tenants[{t_index}]"
        tenant = _object(raw_tenant, where, {"externalId"}, {"policies", "backupSets"})
        external_id = _tenant(tenant["externalId"], f"{where}.externalId")
        policies = []
        for p_index, raw in enumerate(_list(tenant.get("policies", []), f"{where}.policies")):
            p_where = f"{where}.policies[{p_index}]"
            policy = _object(raw, p_where, {"id", "type", "displayName", "payload"})
            if not isinstance(policy["payload"], dict):
                raise SeedError(f"{p_where}.payload: must be an object")
            policies.append(
                LivePolicy(
                    policy_id=_text(policy["id"], f"{p_where}.id"),
                    policy_type=_text(policy["type"], f"{p_where}.type"),
                    display_name=_text(policy["displayName"], f"{p_where}.displayName", 1024),
                    payload=policy["payload"],
                )
            )
        backup_sets = []
        for b_index, raw in enumerate(_list(tenant.get("backupSets", []), f"{where}.backupSets")):
            b_where = f"{where}.backupSets[{b_index}]"
            backup_set = _object(raw, b_where, {"id", "name"})
            backup_sets.append(
                (
                    _text(backup_set["id"], f"{b_where}.id", MAX_TARGET_LEN),
                    _text(backup_set["name"], f"{b_where}.name", 1024),
                )
            )
        tenants.append((external_id, policies, backup_sets))
    return tenants


def load_seed_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SeedError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SeedError(f"{path}: not valid JSON ({exc})") from None


def seed(conninfo: str, document: Any) -> SeedSummary:
    tenants = parse_seed(document)
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for external_id, policies, backup_sets in tenants:
            tenant_id = domain.tenant_upsert(conn, external_id)
            # The last entry of an id wins, as one upsert after another would.
            latest = list({policy.policy_id: policy for policy in policies}.values())
            for start in range(0, len(latest), _POLICY_BATCH):
                domain.live_policy_upsert_many(
                    conn, tenant_id, latest[start : start + _POLICY_BATCH]
                )
            for backup_set_id, name in backup_sets:
                domain.backup_set_upsert(conn, tenant_id, backup_set_id, name)
    return SeedSummary(
        tenants=len(tenants),
        policies=sum(len(p) for _, p, _ in tenants),
        backup_sets=sum(len(b) for _, _, b in tenants),
    )
