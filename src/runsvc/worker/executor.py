"""Executes one run: claim under a lease, resolve the work list, run the
batch loop, finish (or give the run back when stopping). Written once,
around every handler."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable

import psycopg
from psycopg_pool import ConnectionPool

from runsvc import safe_errors
from runsvc.config import Settings
from runsvc.handlers import HANDLERS
from runsvc.handlers.base import RunContext, RunError, RunHandler
from runsvc.model import Run, RunStatus, RunType, SafeError
from runsvc.redact import describe_exception
from runsvc.source.port import SourceRejected, TenantSource
from runsvc.store import domain
from runsvc.store import runs as store
from runsvc.store.runs import ClaimedRun, Progress
from runsvc.worker.batches import BatchLoop, BatchSizer, with_total
from runsvc.worker.guard import Guard, StopNow
from runsvc.worker.lease import LeaseKeeper, LeaseLost
from runsvc.worker.source_calls import GuardedSource, SourcePolicy
from runsvc.worker.status import cancelled_error, final_status, items_failed_error
from runsvc.worker.stop import StopSignal

log = logging.getLogger(__name__)

# Positions per statement when a cancel or a run-level error fails the rest.
FAIL_SPAN = 5000


class Executor:
    def __init__(
        self,
        pool: ConnectionPool,
        source: TenantSource,
        settings: Settings,
        *,
        stop: StopSignal | None = None,
        dispatch: Callable[[uuid.UUID], None] | None = None,
        handlers: dict[RunType, RunHandler] = HANDLERS,
    ) -> None:
        self.pool = pool
        self.source = source
        self.settings = settings
        self.stop = stop or StopSignal(settings.shutdown_grace_seconds)
        # Sends the run's message again when this worker gives a run back.
        self.dispatch = dispatch
        self.handlers = handlers
        self.source_policy = SourcePolicy(
            timeout=settings.source_timeout_seconds,
            attempts=settings.source_retries,
            base_delay=settings.source_retry_base_seconds,
        )

    def execute(self, run_id: uuid.UUID) -> Run | None:
        """Runs the run to its end if it can be claimed; returns the final
        record, or None when it was not claimable (a duplicate message, a run
        already finished, or one whose lease another worker holds) or was
        given back (a stop, a lost lease, an unexpected error)."""
        if self.stop.requested:
            # Taking no new work: leave the run due for another worker.
            with self.pool.connection() as conn:
                store.run_dispatch_due_now_sync(conn, run_id)
            return None
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        with self.pool.connection() as conn:
            claim = store.run_claim(
                conn, run_id, owner=owner, lease_seconds=self.settings.lease_seconds
            )
        if claim is None:
            log.debug("run %s not claimable", run_id)
            return None
        log.info("run %s claimed (attempt %d)", run_id, claim.attempts)
        keeper = LeaseKeeper(self.pool, run_id, owner, self.settings.lease_seconds)
        keeper.start()
        guard = Guard(self.stop, keeper)
        try:
            try:
                if claim.attempts > self.settings.max_attempts:
                    attempts = claim.attempts - 1
                    raise RunError(safe_errors.ATTEMPTS_EXHAUSTED, {"attempts": attempts})
                return self._execute(claim, owner, guard)
            except RunError as error:
                return self._finish_with_error(claim, owner, error)
        except LeaseLost:
            log.warning(
                "run %s: lease lost; the batch in hand was not recorded, another worker "
                "continues the run",
                run_id,
            )
            return None
        except StopNow:
            keeper.stop()
            self._release(run_id, owner, refund=True)
            log.info("run %s given back: this worker is stopping", run_id)
            if self.dispatch is not None:
                self._send_again(run_id)
            return None
        except Exception as exc:
            # Infrastructure trouble (database gone, a bug, ...): give the run
            # back so that it is dispatched again; this counts as an attempt.
            log.error("run %s interrupted: %s", run_id, describe_exception(exc))
            keeper.stop()
            self._release(run_id, owner, refund=False)
            return None
        finally:
            keeper.stop()

    def _execute(self, claim: ClaimedRun, owner: str, guard: Guard) -> Run:
        handler = self.handlers[claim.run_type]
        with self.pool.connection() as conn:
            tenant_id = domain.tenant_get_id(conn, claim.tenant_external_id)
            if tenant_id is None:
                raise RunError(safe_errors.TENANT_NOT_FOUND)
            source = GuardedSource(self.source, claim.tenant_external_id, guard, self.source_policy)
            ctx = RunContext(
                run=claim, tenant_id=tenant_id, source=source, connection=self.pool.connection
            )
            handler.check(ctx, conn)
        progress = Progress(claim.total, claim.succeeded, claim.failed, claim.cancel_requested)
        if progress.cancel_requested:
            return self._finish_cancelled(claim, owner, progress)
        if not claim.items_resolved:
            progress = with_total(progress, self._resolve(ctx, handler, owner, guard))
        loop = BatchLoop(
            self.pool,
            ctx,
            handler,
            guard,
            owner=owner,
            lease_seconds=self.settings.lease_seconds,
            sizer=BatchSizer(self.settings.batch_size, self.settings.flush_seconds),
        )
        end = loop.run(progress)
        if end.cancelled:
            return self._finish_cancelled(claim, owner, end.progress)
        return self._finish(claim, owner, end.progress)

    def _resolve(self, ctx: RunContext, handler: RunHandler, owner: str, guard: Guard) -> int:
        """Writes the run's work list to run_items; returns its length. The
        default set comes page by page (never the whole list in memory),
        each page in a short transaction fenced by the lease owner."""
        run_id = ctx.run_id
        if ctx.run.items_requested:
            with self.pool.connection() as conn:
                total = store.run_items_insert_requested(conn, run_id, owner=owner)
            if total is None:
                raise LeaseLost()
            return total
        with self.pool.connection() as conn:
            store.run_items_reset(conn, run_id, owner=owner)
        total = 0
        position = 0
        try:
            for page in handler.default_items(ctx):
                guard.check()
                with self.pool.connection() as conn, conn.transaction():
                    total += store.run_items_append(conn, run_id, page, first_position=position)
                    if (
                        store.run_lease_renew(
                            conn, run_id, owner=owner, lease_seconds=self.settings.lease_seconds
                        )
                        is None
                    ):
                        raise LeaseLost()
                position += len(page)
        except SourceRejected as rejected:
            raise RunError(safe_errors.safe_code(rejected.code)) from None
        with self.pool.connection() as conn:
            if not store.run_items_resolved(conn, run_id, owner=owner, total=total):
                raise LeaseLost()
        log.info("run %s: %d items", run_id, total)
        return total

    def _finish(self, claim: ClaimedRun, owner: str, progress: Progress) -> Run:
        status = final_status(progress.succeeded, progress.failed)
        safe_error: SafeError | None = None
        with self.pool.connection() as conn, conn.transaction():
            if status is not RunStatus.SUCCEEDED:
                failed_ids, codes = store.run_items_failed_summary(
                    conn, claim.id, sample=safe_errors.FAILED_SAMPLE
                )
                safe_error = items_failed_error(progress.failed, progress.total, failed_ids, codes)
            finished = store.run_finish(
                conn, claim.id, owner=owner, status=status, safe_error=safe_error
            )
            if finished is None:
                raise LeaseLost()
        log.info("run %s %s: %d/%d succeeded", claim.id, status, finished.succeeded, finished.total)
        return finished

    def _fail_pending(self, run_id: uuid.UUID, owner: str, code: str) -> int:
        """Fails every item without an outcome with `code`, range by range,
        each in a short transaction fenced by the lease owner; how many."""
        failed = 0
        with self.pool.connection() as conn:
            first = store.run_items_next_pending(conn, run_id, after=-1)
        while first is not None:
            with self.pool.connection() as conn, conn.transaction():
                failed += store.run_items_fail_pending(
                    conn, run_id, error_code=code, first=first, span=FAIL_SPAN
                )
                renewed = store.run_lease_renew(
                    conn, run_id, owner=owner, lease_seconds=self.settings.lease_seconds
                )
                if renewed is None:
                    raise LeaseLost()
                first = store.run_items_next_pending(conn, run_id, after=first + FAIL_SPAN - 1)
        return failed

    def _finish_cancelled(self, claim: ClaimedRun, owner: str, progress: Progress) -> Run:
        """A cancel asked for through the database: every item never
        attempted fails with CANCELLED, and the run ends failed."""
        cancelled = self._fail_pending(claim.id, owner, safe_errors.CANCELLED)
        with self.pool.connection() as conn, conn.transaction():
            error = cancelled_error(cancelled, progress.failed + cancelled, progress.total)
            finished = store.run_finish(
                conn, claim.id, owner=owner, status=RunStatus.FAILED, safe_error=error
            )
            if finished is None:
                raise LeaseLost()
        log.info("run %s cancelled: %d items never attempted", claim.id, cancelled)
        return finished

    def _finish_with_error(self, claim: ClaimedRun, owner: str, error: RunError) -> Run | None:
        code = safe_errors.safe_code(error.code)
        if claim.items_resolved:
            self._fail_pending(claim.id, owner, code)
        with self.pool.connection() as conn, conn.transaction():
            if not claim.items_resolved:
                # A work list half written (or none): the run ends with no items.
                store.run_items_reset(conn, claim.id, owner=owner)
            finished = store.run_finish(
                conn,
                claim.id,
                owner=owner,
                status=RunStatus.FAILED,
                safe_error=SafeError(code, error.context),
            )
        if finished is None:
            log.warning("run %s: lease lost before it could fail with %s", claim.id, code)
            return None
        log.info("run %s failed: %s", claim.id, code)
        return finished

    def _release(self, run_id: uuid.UUID, owner: str, *, refund: bool) -> None:
        try:
            with self.pool.connection() as conn:
                store.run_lease_release(conn, run_id, owner=owner, refund=refund)
        except psycopg.Error as exc:
            log.warning(
                "could not release run %s (the lease will expire): %s",
                run_id,
                describe_exception(exc),
            )

    def _send_again(self, run_id: uuid.UUID) -> None:
        assert self.dispatch is not None
        try:
            self.dispatch(run_id)
        except Exception as exc:  # the run is due: the reapers send it
            log.warning("could not send run %s again: %s", run_id, describe_exception(exc))
