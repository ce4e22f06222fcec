"""What a run-type handler is, and what it gets to work with.

A handler only says what happens to one item (and which items and target a
run has). Claiming, leases, batching, progress, retries of the source and
the final status are the executor's, written once around every handler.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from psycopg import Connection

from runsvc.model import Run, RunType
from runsvc.source.port import TenantSource


class RunError(Exception):
    """Ends the whole run as failed with a safe code (e.g. TARGET_NOT_FOUND)."""

    def __init__(self, code: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.context = context or {}


class ItemError(Exception):
    """Fails one item with a safe code; its writes are rolled back."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


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
        """A failure whose writes are kept (unlike raising ItemError)."""
        return cls(False, error_code, detail or None)


@dataclass(slots=True)
class RunContext:
    run: Run
    tenant_id: int
    source: TenantSource
    # The connection of the current transaction; handlers write through it.
    conn: Connection

    @property
    def run_id(self) -> uuid.UUID:
        return self.run.id

    @property
    def tenant(self) -> str:
        return self.run.tenant_external_id

    def require_target(self) -> str:
        target = self.run.target_object_id
        if not target:
            raise RunError("TARGET_REQUIRED", {"field": "targetObjectId"})
        return target


class RunHandler(ABC):
    run_type: ClassVar[RunType]

    def prepare(self, ctx: RunContext) -> None:  # noqa: B027 - optional hook
        """Checks the run's target before any item; raises RunError."""

    @abstractmethod
    def default_items(self, ctx: RunContext) -> list[str]:
        """The work list when the caller gave no item ids."""

    @abstractmethod
    def process(self, ctx: RunContext, item_id: str) -> ItemResult:
        """Does the work of one item, inside a savepoint of the batch."""
