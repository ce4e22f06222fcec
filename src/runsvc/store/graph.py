"""Where each policy of a Graph tenant lives in Graph (its collection, and
the object a restore created in place of a deleted one). Set-based: one
statement per batch of policies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import Connection

from runsvc.store.queries import QUERIES


@dataclass(frozen=True, slots=True)
class GraphPlace:
    collection: str
    # The object a restore created anew when this one was gone, if any.
    replaced_by: str | None = None


def graph_policies_upsert(
    conn: Connection, tenant_id: int, places: Sequence[tuple[str, str]]
) -> None:
    """Records (policy id, collection) pairs seen in a listing."""
    if places:
        conn.execute(
            QUERIES["graph_policies_upsert"],
            {
                "tenant_id": tenant_id,
                "policy_ids": [policy_id for policy_id, _ in places],
                "collections": [collection for _, collection in places],
            },
        )


def graph_policies_get(
    conn: Connection, tenant_id: int, policy_ids: Sequence[str]
) -> dict[str, GraphPlace]:
    rows = conn.execute(
        QUERIES["graph_policies_get"], {"tenant_id": tenant_id, "policy_ids": list(policy_ids)}
    ).fetchall()
    return {policy_id: GraphPlace(collection, replaced) for policy_id, collection, replaced in rows}


def graph_policies_replace(
    conn: Connection, tenant_id: int, replacements: Sequence[tuple[str, str, str]]
) -> None:
    """Records (old id, new id, collection): the old policy lives on as the new object."""
    if replacements:
        conn.execute(
            QUERIES["graph_policies_replace"],
            {
                "tenant_id": tenant_id,
                "old_ids": [old for old, _, _ in replacements],
                "new_ids": [new for _, new, _ in replacements],
                "collections": [collection for _, _, collection in replacements],
            },
        )
