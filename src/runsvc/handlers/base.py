"""What a run-type handler is, and what it gets to work with.

A handler says what happens to a batch of items, in two steps: `fetch`
(outside any transaction: reads the TenantSource, and writes to it for a
restore) and `record` (inside the batch's one short transaction: set-based
writes of the domain rows, one result per item). Claiming, leases, the
batch loop, progress, cancel, stop and the final status are the worker's,
written once around every handler.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from psycopg import Connection

from runsvc import safe_errors
from runsvc.model import LivePolicy, RunType
from runsvc.source.port import ItemFailure, PolicyIdPage, PutResult
from runsvc.store.runs import ClaimedRun


class RunError(Exception):
    """Ends the whole run as failed with a safe code (e.g. TARGET_NOT_FOUND)."""

    def __init__(self, code: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.context = context or {}


@dataclass(frozen=True, slots=True)
class ItemResult:
    succeeded: bool
    error_code: str | None = None
    detail: dict[str, Any] | None = field(default=None)

    @classmethod
    def ok(cls, **detail: Any) -> ItemResult:
        return cls(True, None, detail or None)

    @classmethod
    def failed(cls, error_code: str, **detail: Any) -> ItemResult:
        return cls(False, error_code, detail or None)


class RunSource(Protocol):
    """The TenantSource as a handler sees it: bound to the run's tenant,
    with deadlines, retries and per-item final results (see
    runsvc.worker.source_calls)."""

    def list_page(self, cursor: str | None) -> PolicyIdPage: ...

    def get(self, policy_ids: Sequence[str]) -> dict[str, LivePolicy | ItemFailure | None]: ...

    def put(self, policies: Sequence[LivePolicy]) -> dict[str, PutResult]: ...


class Reads(Protocol):
    """Opens a pooled connection for reads outside the batch transaction."""

    def __call__(self) -> AbstractContextManager[Connection]: ...


@dataclass(slots=True)
class RunContext:
    run: ClaimedRun
    tenant_id: int
    source: RunSource
    # A connection for reads (autocommit, no transaction held) in fetch and
    # default_items; record writes through the connection it is given.
    connection: Reads

    @property
    def run_id(self) -> uuid.UUID:
        return self.run.id

    @property
    def tenant(self) -> str:
        return self.run.tenant_external_id

    def require_target(self) -> str:
        target = self.run.target_object_id
        if not target:
            raise RunError(safe_errors.TARGET_REQUIRED, {"field": "targetObjectId"})
        return target


class RunHandler(ABC):
    run_type: ClassVar[RunType]
    # Whether fetch writes to the tenant (then no batch is fetched ahead).
    writes_to_source: ClassVar[bool] = False

    def check(self, ctx: RunContext, conn: Connection) -> None:  # noqa: B027 - optional hook
        """Checks the run's target before any item; raises RunError."""

    @abstractmethod
    def default_items(self, ctx: RunContext) -> Iterator[list[str]]:
        """The work list, page by page, when the caller gave no item ids."""

    @abstractmethod
    def fetch(self, ctx: RunContext, item_ids: list[str]) -> Any:
        """Outside any transaction: what the batch needs from the source."""

    @abstractmethod
    def record(
        self, ctx: RunContext, conn: Connection, item_ids: list[str], fetched: Any
    ) -> list[ItemResult]:
        """In the batch's transaction: one set-based write per kind of row,
        and one result per item of `item_ids` (in order). It may be given a
        part of the fetched batch (when a batch statement failed, the worker
        retries it in halves), so it looks items up in `fetched` by id."""
