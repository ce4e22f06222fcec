"""The batch loop of one run: a page of the work list at a time, fetched
from the source outside any transaction, then recorded (domain rows,
outcomes and progress) in one short transaction fenced by the lease owner.
Memory stays bounded by the batch, whatever the length of the run."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import psycopg
from psycopg_pool import ConnectionPool

from runsvc import safe_errors
from runsvc.handlers.base import ItemResult, RunContext, RunHandler
from runsvc.redact import describe_exception
from runsvc.store import runs as store
from runsvc.store.runs import ItemOutcome, Progress
from runsvc.worker.guard import Guard
from runsvc.worker.lease import LeaseLost

log = logging.getLogger(__name__)

# The first batch of a run; later ones grow (or shrink) toward the target time.
FIRST_BATCH = 50


class BatchSizer:
    """Sizes batches so that one takes about `target_seconds`: small for a
    slow source (progress, cancel and stop stay prompt), up to `largest`
    for a fast one (fewer, bigger statements)."""

    def __init__(self, largest: int, target_seconds: float) -> None:
        self.largest = largest
        self.target_seconds = target_seconds
        self.size = min(FIRST_BATCH, largest)

    def observe(self, items: int, seconds: float) -> None:
        if items < self.size:
            return  # a short last page says nothing about speed
        wanted = items * self.target_seconds / max(seconds, 1e-3)
        self.size = int(max(1, min(self.largest, self.size * 2, max(self.size / 2, wanted))))


@dataclass(frozen=True, slots=True)
class LoopEnd:
    progress: Progress
    # True when the loop stopped for a cancel with items never attempted.
    cancelled: bool


class BatchLoop:
    def __init__(
        self,
        pool: ConnectionPool,
        ctx: RunContext,
        handler: RunHandler,
        guard: Guard,
        *,
        owner: str,
        lease_seconds: float,
        sizer: BatchSizer,
    ) -> None:
        self.pool = pool
        self.ctx = ctx
        self.handler = handler
        self.guard = guard
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.sizer = sizer

    def run(self, progress: Progress) -> LoopEnd:
        # A handler that only reads the source has its next batch fetched
        # while this one is recorded (the database and Python work at once).
        # One that writes (a restore) does not: a cancel or stop would find
        # a batch written to the tenant and never recorded.
        ahead = None if self.handler.writes_to_source else ThreadPoolExecutor(1, "fetch-ahead")
        try:
            if progress.cancel_requested or self.guard.cancel_requested:
                return LoopEnd(progress, cancelled=True)
            self.guard.at_boundary()
            batch = self._fetch_after(-1)
            began = time.monotonic()
            while batch is not None:
                page, fetched = batch
                following = ahead.submit(self._fetch_after, page[-1][0]) if ahead else None
                self.guard.check()
                progress = self._record(page, fetched)
                self.sizer.observe(len(page), time.monotonic() - began)
                began = time.monotonic()
                if progress.cancel_requested or self.guard.cancel_requested:
                    return LoopEnd(progress, cancelled=True)
                self.guard.at_boundary()
                batch = following.result() if following else self._fetch_after(page[-1][0])
            return LoopEnd(progress, cancelled=False)
        finally:
            if ahead is not None:
                ahead.shutdown(wait=False, cancel_futures=True)

    def _fetch_after(self, after: int) -> tuple[list[tuple[int, str]], object] | None:
        """The next page of the work list after position `after`, and what
        the handler fetched for it; None when no item is left."""
        with self.pool.connection() as conn:
            page = store.run_items_pending_page(
                conn, self.ctx.run_id, after=after, limit=self.sizer.size
            )
            while not page:
                # Done already up to here (a resumed run): skip ahead.
                following = store.run_items_next_pending(conn, self.ctx.run_id, after=after)
                if following is None:
                    return None
                after = following - 1
                page = store.run_items_pending_page(
                    conn, self.ctx.run_id, after=after, limit=self.sizer.size
                )
        return page, self.handler.fetch(self.ctx, [item_id for _, item_id in page])

    def _record(self, page: list[tuple[int, str]], fetched: object) -> Progress:
        """Records the batch; when a batch statement fails, its halves are
        recorded on their own, so that a bad item fails alone."""
        try:
            return self._record_once(page, fetched)
        except psycopg.OperationalError:
            raise  # the connection is gone: not an item's fault
        except psycopg.DatabaseError as exc:
            if len(page) > 1:
                middle = len(page) // 2
                self._record(page[:middle], fetched)
                return self._record(page[middle:], fetched)
            log.warning("run %s item failed: %s", self.ctx.run_id, describe_exception(exc))
            return self._record_once(page, fetched, broken=True)

    def _record_once(
        self, page: list[tuple[int, str]], fetched: object, *, broken: bool = False
    ) -> Progress:
        """One transaction: the handler's writes, the outcomes, the counts.
        A `broken` item fails as INTERNAL_ERROR, writing nothing else."""
        item_ids = [item_id for _, item_id in page]
        with self.pool.connection() as conn, conn.transaction():
            if broken:
                results = [ItemResult.failed(safe_errors.INTERNAL_ERROR)] * len(page)
            else:
                results = self.handler.record(self.ctx, conn, item_ids, fetched)
            outcomes = [
                ItemOutcome(
                    position,
                    result.succeeded,
                    None if result.succeeded else safe_errors.safe_code(result.error_code),
                    result.detail,
                )
                for (position, _), result in zip(page, results, strict=True)
            ]
            succeeded, failed = store.run_items_record(conn, self.ctx.run_id, outcomes)
            progress = store.run_record_progress(
                conn,
                self.ctx.run_id,
                owner=self.owner,
                succeeded=succeeded,
                failed=failed,
                lease_seconds=self.lease_seconds,
            )
            if progress is None:
                # Another worker owns the run: this batch's writes roll back.
                log.warning(
                    "run %s: another worker owns the run; this batch's writes were refused",
                    self.ctx.run_id,
                )
                raise LeaseLost()
        return progress


def with_total(progress: Progress, total: int) -> Progress:
    return replace(progress, total=total)
