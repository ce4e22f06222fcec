"""Operations on runs and their items.

The server's operations are async (psycopg AsyncConnection); the worker's are
sync (psycopg Connection) and take the caller's connection, so that several
of them share one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from runsvc.model import Run, RunState, RunStatus, RunType, SafeError
from runsvc.store.queries import QUERIES

# How often run_insert_or_reuse retries when the run it collided with was not
# yet visible to its snapshot, or finished meanwhile; each retry sees more.
_INSERT_ATTEMPTS = 20


class DedupeRace(Exception):
    """run_insert_or_reuse kept losing races; should never happen in practice."""


@dataclass(frozen=True, slots=True)
class NewRun:
    tenant_external_id: str
    run_type: RunType
    target_object_id: str | None
    payload_hash: str | None
    item_ids: list[str] | None
    # Who asked, for the logs and traces of the run (runsvc.observe).
    request_id: str | None = None
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    position: int
    succeeded: bool
    error_code: str | None = None
    detail: dict[str, Any] | None = None


# --- server side (async) ---------------------------------------------------


class TenantNotFound(Exception):
    """StartRun named a tenant that has no row in `tenants`; nothing was written."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A Dramatiq message written by the statement that creates the run (the
    Postgres broker's queue table): `body` is the message as Dramatiq encodes it."""

    queue: str
    message_id: str
    body: dict[str, Any]


async def run_insert_or_reuse(
    conn: AsyncConnection,
    new: NewRun,
    *,
    run_id: uuid.UUID,
    token_name: str,
    redispatch_after: float,
    message: QueuedMessage | None = None,
    queue: str | None = None,
) -> tuple[RunState, bool]:
    """Creates a queued run (with id `run_id`, on the workers' `queue`) or
    returns the active one with the same key, and audits the call; with
    `message`, the new run's message too. One statement, one round trip, one
    transaction.

    Returns (run, reused). Durable when this returns (autocommit connection).
    Raises TenantNotFound for an unknown tenant.
    """
    params = {
        "run_id": run_id,
        "tenant": new.tenant_external_id,
        "run_type": new.run_type.value,
        "target_object_id": new.target_object_id,
        "payload_hash": new.payload_hash,
        "item_ids": new.item_ids,
        "redispatch_after": redispatch_after,
        "token_name": token_name,
        "request_id": new.request_id,
        "trace_context": Jsonb(new.trace_context) if new.trace_context else None,
        "queue": queue,
    }
    statement = _with_message(params, message, QUERIES["run_insert_or_reuse"], _WITH_MESSAGE)
    for _ in range(_INSERT_ATTEMPTS):
        cur = await conn.execute(statement, params)
        row = await cur.fetchone()
        assert row is not None  # the statement always returns one row
        if not row[0]:
            raise TenantNotFound(new.tenant_external_id)
        if row[2] is not None:
            return RunState.from_tuple(row[2:]), row[1]
    raise DedupeRace("could not insert or find the active run")


def _with_message(
    params: dict[str, Any], message: QueuedMessage | None, plain: str, with_message: str
) -> str:
    """The statement to run: `with_message` (its message CTE's parameters
    added to `params`) when there is a message to write, else `plain`."""
    if message is None:
        return plain
    params.update(
        message_queue=message.queue, message_id=message.message_id, message=Jsonb(message.body)
    )
    return with_message


def _with_message_cte(statement: str, cte: str) -> str:
    """run_insert_or_reuse with the message CTE added to its WITH list (a
    data-modifying CTE runs though the final SELECT never reads it)."""
    marker = "\n-- (run_message_enqueue's CTE goes here with the Postgres broker)\n"
    if statement.count(marker) != 1:
        raise ValueError("run_insert_or_reuse lost the place of its message CTE")
    return statement.replace(marker, f",\n{cte}\n")


_WITH_MESSAGE = _with_message_cte(QUERIES["run_insert_or_reuse"], QUERIES["run_message_enqueue"])
_RETRY_WITH_MESSAGE = _with_message_cte(
    QUERIES["run_retry_insert_or_reuse"], QUERIES["run_message_enqueue"]
)


async def run_get(
    conn: AsyncConnection, *, tenant: str, run_type: str, run_id: uuid.UUID
) -> RunState | None:
    cur = await conn.execute(
        QUERIES["run_get"], {"tenant": tenant, "run_type": run_type, "run_id": run_id}
    )
    row = await cur.fetchone()
    return RunState.from_tuple(row) if row else None


async def run_queue_stats(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Per run type with active runs: queued, running, oldest_queued_seconds."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(QUERIES["run_queue_stats"])
        return await cur.fetchall()


async def database_ping(conn: AsyncConnection) -> None:
    await conn.execute(QUERIES["database_ping"])


async def channel_notify(conn: AsyncConnection, channel: str) -> None:
    await conn.execute(QUERIES["channel_notify"], {"channel": channel})


async def run_get_many(conn: AsyncConnection, run_ids: Sequence[uuid.UUID]) -> list[RunState]:
    cur = await conn.execute(QUERIES["run_get_many"], {"run_ids": list(run_ids)})
    return [RunState.from_tuple(row) for row in await cur.fetchall()]


async def run_dispatch_due_now(conn: AsyncConnection, run_id: uuid.UUID) -> None:
    """The run's message could not be sent: the reaper sends it at its next pass."""
    await conn.execute(QUERIES["run_dispatch_due_now"], {"run_id": run_id})


# --- worker side (sync, caller's transaction) ------------------------------
# The worker's queries name their columns: none carries requested_item_ids.


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """What a worker knows of the run it claimed."""

    id: uuid.UUID
    tenant_external_id: str
    run_type: RunType
    target_object_id: str | None
    items_resolved: bool
    # Whether the caller gave item ids (else the run type's default set).
    items_requested: bool
    attempts: int
    total: int
    succeeded: int
    failed: int
    cancel_requested: bool
    # The request that created the run, for its logs and traces (observe).
    request_id: str | None = None
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """The run's counts after a batch, and whether a cancel was asked for."""

    total: int
    succeeded: int
    failed: int
    cancel_requested: bool


def _one(conn: Connection, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QUERIES[name], params)
        return cur.fetchone()


# Serialises claims (one short transaction each), so that a tenant's running
# count never goes past its limit when workers claim at the same moment.
_CLAIM_LOCK = 0x72756E73636C6D  # "runsclm"


def run_claim_next(
    conn: Connection, *, owner: str, lease_seconds: float, max_running: int, queue: str
) -> ClaimedRun | None:
    """The next run this worker should execute, claimed; None when no run
    may start now (none queued, or every tenant with queued runs is at its
    limit of running runs)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CLAIM_LOCK,))
        row = _one(
            conn,
            "run_claim_next",
            {
                "owner": owner,
                "lease_seconds": lease_seconds,
                "max_running": max_running,
                "queue": queue,
            },
        )
    if row is None:
        return None
    return ClaimedRun(**{**row, "run_type": RunType(row["run_type"])})


def run_lease_renew(
    conn: Connection, run_id: uuid.UUID, *, owner: str, lease_seconds: float
) -> bool | None:
    """Whether a cancel was asked for; None when the lease is lost."""
    params = {"run_id": run_id, "owner": owner, "lease_seconds": lease_seconds}
    row = _one(conn, "run_lease_renew", params)
    return None if row is None else row["cancel_requested"]


def run_lease_release(conn: Connection, run_id: uuid.UUID, *, owner: str, refund: bool) -> bool:
    params = {"run_id": run_id, "owner": owner, "refund": refund}
    return conn.execute(QUERIES["run_lease_release"], params).fetchone() is not None


def run_dispatch_due_now_sync(conn: Connection, run_id: uuid.UUID) -> None:
    conn.execute(QUERIES["run_dispatch_due_now"], {"run_id": run_id})


def run_items_reset(conn: Connection, run_id: uuid.UUID, *, owner: str) -> None:
    conn.execute(QUERIES["run_items_reset"], {"run_id": run_id, "owner": owner})


def run_items_insert_requested(conn: Connection, run_id: uuid.UUID, *, owner: str) -> int | None:
    """Writes the caller's work list; its total, or None when the lease is lost."""
    row = _one(conn, "run_items_insert_requested", {"run_id": run_id, "owner": owner})
    return row["total"] if row else None


def run_items_append(
    conn: Connection, run_id: uuid.UUID, item_ids: Sequence[str], *, first_position: int
) -> int:
    """Appends a page of the work list; returns how many were new."""
    params = {"run_id": run_id, "item_ids": list(item_ids), "first_position": first_position}
    with conn.cursor() as cur:
        cur.execute(QUERIES["run_items_append"], params)
        return cur.rowcount


def run_items_resolved(conn: Connection, run_id: uuid.UUID, *, owner: str, total: int) -> bool:
    params = {"run_id": run_id, "owner": owner, "total": total}
    return _one(conn, "run_items_resolved", params) is not None


def run_items_pending_page(
    conn: Connection, run_id: uuid.UUID, *, after: int, limit: int
) -> list[tuple[int, str]]:
    rows = conn.execute(
        QUERIES["run_items_pending_page"], {"run_id": run_id, "after": after, "limit": limit}
    ).fetchall()
    return [(position, item_id) for position, item_id in rows]


def run_items_next_pending(conn: Connection, run_id: uuid.UUID, *, after: int) -> int | None:
    row = conn.execute(
        QUERIES["run_items_next_pending"], {"run_id": run_id, "after": after}
    ).fetchone()
    return row[0]


def run_items_record(
    conn: Connection, run_id: uuid.UUID, outcomes: Sequence[ItemOutcome]
) -> tuple[int, int]:
    """Records outcomes not yet recorded; returns (succeeded, failed) added."""
    rows = conn.execute(
        QUERIES["run_items_record"],
        {
            "run_id": run_id,
            "first": min(o.position for o in outcomes),
            "last": max(o.position for o in outcomes),
            "positions": [o.position for o in outcomes],
            "outcomes": ["succeeded" if o.succeeded else "failed" for o in outcomes],
            "error_codes": [o.error_code for o in outcomes],
            "details": Jsonb([o.detail for o in outcomes]),
        },
    ).fetchall()
    succeeded = sum(1 for (outcome,) in rows if outcome == "succeeded")
    return succeeded, len(rows) - succeeded


def run_items_fail_pending(
    conn: Connection, run_id: uuid.UUID, *, error_code: str, first: int, span: int
) -> int:
    """Fails the items without an outcome among `span` positions from `first`."""
    params = {"run_id": run_id, "error_code": error_code, "first": first, "span": span}
    with conn.cursor() as cur:
        cur.execute(QUERIES["run_items_fail_pending"], params)
        return cur.rowcount


def run_items_failed_summary(
    conn: Connection, run_id: uuid.UUID, *, sample: int
) -> tuple[list[str], dict[str, int]]:
    """The first failed item ids and the count of failures per error code."""
    ids = [
        item_id
        for item_id, _ in conn.execute(
            QUERIES["run_items_failed_sample"], {"run_id": run_id, "limit": sample}
        )
    ]
    codes = {
        code: n for code, n in conn.execute(QUERIES["run_items_failed_codes"], {"run_id": run_id})
    }
    return ids, codes


def run_record_progress(
    conn: Connection,
    run_id: uuid.UUID,
    *,
    owner: str,
    succeeded: int,
    failed: int,
    lease_seconds: float,
) -> Progress | None:
    """Adds to the counts under the owner fence; None when the lease is lost."""
    row = _one(
        conn,
        "run_record_progress",
        {
            "run_id": run_id,
            "owner": owner,
            "succeeded": succeeded,
            "failed": failed,
            "lease_seconds": lease_seconds,
        },
    )
    return Progress(**row) if row else None


def run_finish(
    conn: Connection,
    run_id: uuid.UUID,
    *,
    owner: str,
    status: RunStatus,
    safe_error: SafeError | None,
) -> Run | None:
    row = _one(
        conn,
        "run_finish",
        {
            "run_id": run_id,
            "owner": owner,
            "status": status.value,
            "safe_error": Jsonb(safe_error.to_json()) if safe_error else None,
        },
    )
    return Run.from_row(row) if row else None


def run_dispatch_take(conn: Connection, *, limit: int, hold: float, queue: str) -> list[uuid.UUID]:
    params = {"limit": limit, "hold": hold, "queue": queue}
    rows = conn.execute(QUERIES["run_dispatch_take"], params).fetchall()
    return [run_id for (run_id,) in rows]


# --- operators' extensions (async, server side) ------------------------------


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which of a tenant's runs ListRuns returns; None means any."""

    tenant_external_id: str
    run_types: list[str] | None = None
    statuses: list[str] | None = None
    target_object_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunItem:
    position: int
    item_id: str
    outcome: str  # pending, succeeded, failed
    error_code: str | None
    detail: dict[str, Any] | None
    finished_at: datetime | None


async def run_list(
    conn: AsyncConnection,
    selection: RunFilter,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RunState]:
    """Runs newest first, after the keyset position `after` (created_at, id)."""
    params = {
        "tenant": selection.tenant_external_id,
        "run_types": selection.run_types,
        "statuses": selection.statuses,
        "target_object_id": selection.target_object_id,
        "created_after": selection.created_after,
        "created_before": selection.created_before,
        "after_created_at": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    cur = await conn.execute(QUERIES["run_list"], params)
    return [RunState.from_tuple(row) for row in await cur.fetchall()]


async def run_items_page(
    conn: AsyncConnection,
    run_id: uuid.UUID,
    *,
    outcomes: list[str] | None,
    after_position: int,
    limit: int,
) -> list[RunItem]:
    params = {
        "run_id": run_id,
        "outcomes": outcomes,
        "after_position": after_position,
        "limit": limit,
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(QUERIES["run_items_page"], params)
        rows = await cur.fetchall()
    return [
        RunItem(
            position=row["position"],
            item_id=row["item_id"],
            outcome=row["outcome"] or "pending",
            error_code=row["error_code"],
            detail=row["detail"],
            finished_at=row["finished_at"],
        )
        for row in rows
    ]


async def run_cancel(
    conn: AsyncConnection,
    *,
    tenant: str,
    run_type: str,
    run_id: uuid.UUID,
    safe_error: SafeError,
) -> RunState | None:
    """Cancels an active run (see the query); None when the run is not
    active (terminal, or not this tenant's and type's)."""
    params = {
        "tenant": tenant,
        "run_type": run_type,
        "run_id": run_id,
        "safe_error": Jsonb(safe_error.to_json()),
        "error_code": safe_error.code,
    }
    cur = await conn.execute(QUERIES["run_cancel"], params)
    row = await cur.fetchone()
    return RunState.from_tuple(row) if row else None


async def run_retry_insert_or_reuse(
    conn: AsyncConnection,
    source: RunState,
    *,
    run_id: uuid.UUID,
    redispatch_after: float,
    message: QueuedMessage | None = None,
    request_id: str | None = None,
    trace_context: dict[str, str] | None = None,
    queue: str | None = None,
) -> tuple[RunState, bool]:
    """A new run (with id `run_id`) over the failed items of the terminal run
    `source`, or the active run with the same dedupe key; with `message`, the
    new run's message too, in the same statement. Returns (run, reused)."""
    params = {
        "tenant": source.tenant_external_id,
        "run_type": source.run_type.value,
        "source_run_id": source.id,
        "run_id": run_id,
        "redispatch_after": redispatch_after,
        "request_id": request_id,
        "trace_context": Jsonb(trace_context) if trace_context else None,
        "queue": queue,
    }
    statement = _with_message(
        params, message, QUERIES["run_retry_insert_or_reuse"], _RETRY_WITH_MESSAGE
    )
    for _ in range(_INSERT_ATTEMPTS):
        cur = await conn.execute(statement, params)
        row = await cur.fetchone()
        if row is not None:
            return RunState.from_tuple(row[1:]), row[0]
    raise DedupeRace("could not insert or find the active run")


def run_dispatch_sent(
    conn: Connection, run_ids: Sequence[uuid.UUID], *, redispatch_after: float
) -> None:
    conn.execute(
        QUERIES["run_dispatch_sent"],
        {"run_ids": list(run_ids), "redispatch_after": redispatch_after},
    )


def run_dispatch_due_again(conn: Connection, run_ids: Sequence[uuid.UUID]) -> None:
    conn.execute(QUERIES["run_dispatch_due_again"], {"run_ids": list(run_ids)})


def expired_delete(conn: Connection, query: str, *, days: float, limit: int) -> int:
    """One retention batch of `query` (a *_delete_expired query); rows deleted."""
    with conn.cursor() as cur:
        cur.execute(QUERIES[query], {"days": days, "limit": limit})
        return cur.rowcount
