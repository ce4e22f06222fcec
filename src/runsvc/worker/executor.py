"""Executes one run: claim under a lease, resolve the items, process them in
batches, record progress, finish. Written once, around every handler."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

import psycopg
from psycopg import Connection
from psycopg_pool import ConnectionPool

from runsvc.config import Settings
from runsvc.handlers import HANDLERS
from runsvc.handlers.base import ItemError, ItemResult, RunContext, RunError, RunHandler
from runsvc.model import Run, RunStatus, RunType, SafeError
from runsvc.observe import runs as observe
from runsvc.redact import describe_exception
from runsvc.source.port import SourceRejected, SourceUnavailable, TenantSource
from runsvc.store import domain
from runsvc.store import runs as store
from runsvc.store.runs import ItemOutcome
from runsvc.worker import safe_errors

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker owns the run now; stop without writing anything."""


class LeaseKeeper(threading.Thread):
    """Renews the lease every third of its length while the run executes."""

    def __init__(self, pool: ConnectionPool, run_id: uuid.UUID, owner: str, seconds: float):
        super().__init__(name=f"lease-{run_id}", daemon=True)
        self._pool, self._run_id, self._owner, self._seconds = pool, run_id, owner, seconds
        self._stop_event = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self._stop_event.wait(self._seconds / 3):
            try:
                with self._pool.connection() as conn:
                    held = store.run_lease_renew(
                        conn, self._run_id, owner=self._owner, lease_seconds=self._seconds
                    )
            except psycopg.Error as exc:
                # Keep trying: the batch transactions check the lease as well.
                observe.lease_renewal_failed()
                log.warning(
                    "lease renewal of run %s failed: %s", self._run_id, describe_exception(exc)
                )
                continue
            observe.lease_renewed(held)
            if not held:
                self.lost = True
                return

    def stop(self) -> None:
        self._stop_event.set()


class Executor:
    def __init__(
        self,
        pool: ConnectionPool,
        source: TenantSource,
        settings: Settings,
        handlers: dict[RunType, RunHandler] = HANDLERS,
    ) -> None:
        self.pool = pool
        self.source = source
        self.settings = settings
        self.handlers = handlers

    def execute(self, run_id: uuid.UUID) -> Run | None:
        """Runs the run to its end if it can be claimed; returns the final
        record, or None when it was not claimable (a duplicate message, a run
        already finished, or one whose lease another worker holds)."""
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        with self.pool.connection() as conn:
            run = store.run_claim(
                conn, run_id, owner=owner, lease_seconds=self.settings.lease_seconds
            )
            if run is None:
                log.debug("run %s not claimable", run_id)
                return None
            keeper = LeaseKeeper(self.pool, run_id, owner, self.settings.lease_seconds)
            keeper.start()
            with observe.observe_execution(run):
                log.info("run %s claimed (attempt %d)", run_id, run.attempts)
                try:
                    if run.attempts > self.settings.max_attempts:
                        return self._finish_with_error(
                            conn,
                            run,
                            owner,
                            RunError(
                                safe_errors.ATTEMPTS_EXHAUSTED, {"attempts": run.attempts - 1}
                            ),
                        )
                    return self._execute(conn, run, owner, keeper)
                except LeaseLost:
                    observe.lease_lost()
                    log.warning("run %s: lease lost, another worker continues it", run_id)
                    return None
                except Exception as exc:
                    # Infrastructure trouble (database gone, ...): give the run back
                    # so that it is dispatched again, and keep secrets out of logs.
                    log.error("run %s interrupted: %s", run_id, describe_exception(exc))
                    self._release(run_id, owner)
                    return None
                finally:
                    keeper.stop()

    def _execute(self, conn: Connection, run: Run, owner: str, keeper: LeaseKeeper) -> Run:
        handler = self.handlers[run.run_type]
        try:
            with conn.transaction():
                ctx = self._context(conn, run)
                handler.prepare(ctx)
                if not run.items_resolved:
                    items = run.requested_item_ids
                    if items is None:
                        items = list(dict.fromkeys(handler.default_items(ctx)))
                    if store.run_items_insert(conn, run.id, items, owner=owner) is None:
                        raise LeaseLost()
        except RunError as error:
            return self._finish_with_error(conn, run, owner, error)

        pending = store.run_items_pending(conn, run.id)
        next_index = 0
        while next_index < len(pending):
            with observe.observe_batch(run, self.settings.batch_size), conn.transaction():
                if keeper.lost or not store.run_lease_renew(
                    conn, run.id, owner=owner, lease_seconds=self.settings.lease_seconds
                ):
                    raise LeaseLost()
                outcomes: list[ItemOutcome] = []
                flush_at = time.monotonic() + self.settings.flush_seconds
                while next_index < len(pending) and len(outcomes) < self.settings.batch_size:
                    position, item_id = pending[next_index]
                    next_index += 1
                    result = self._process_item(ctx, handler, item_id)
                    outcomes.append(
                        ItemOutcome(position, result.succeeded, result.error_code, result.detail)
                    )
                    if keeper.lost:
                        raise LeaseLost()
                    if time.monotonic() >= flush_at:
                        break
                succeeded, failed = store.run_items_record(conn, run.id, outcomes)
                observe.count_items(run, succeeded, failed)
                progressed = store.run_record_progress(
                    conn, run.id, owner=owner, succeeded=succeeded, failed=failed
                )
                if progressed is None:
                    raise LeaseLost()
                run = progressed
        return self._finish(conn, run, owner)

    def _context(self, conn: Connection, run: Run) -> RunContext:
        tenant_id = domain.tenant_get_id(conn, run.tenant_external_id)
        if tenant_id is None:
            raise RunError(safe_errors.TENANT_NOT_FOUND)
        return RunContext(run=run, tenant_id=tenant_id, source=self.source, conn=conn)

    def _process_item(self, ctx: RunContext, handler: RunHandler, item_id: str) -> ItemResult:
        try:
            with ctx.conn.transaction():  # a savepoint: a failed item undoes only itself
                result = handler.process(ctx, item_id)
            if not result.succeeded:
                return ItemResult(
                    False, safe_errors.safe_code(result.error_code or ""), result.detail
                )
            return result
        except (ItemError, SourceRejected) as error:
            return ItemResult.failed(safe_errors.safe_code(error.code))
        except SourceUnavailable:
            return ItemResult.failed(safe_errors.SOURCE_UNAVAILABLE)
        except psycopg.OperationalError:
            raise  # the connection is gone: not this item's fault
        except Exception as exc:
            log.warning("run %s item failed: %s", ctx.run_id, describe_exception(exc))
            return ItemResult.failed(safe_errors.INTERNAL_ERROR)

    def _finish(self, conn: Connection, run: Run, owner: str) -> Run:
        with conn.transaction():
            safe_error: SafeError | None = None
            if run.failed == 0:
                status = RunStatus.SUCCEEDED
            else:
                status = RunStatus.FAILED if run.succeeded == 0 else RunStatus.PARTIAL
                failed_ids, codes = store.run_items_failed_summary(
                    conn, run.id, sample=safe_errors.FAILED_SAMPLE
                )
                safe_error = safe_errors.items_failed_error(
                    run.failed, run.total, failed_ids, codes
                )
            finished = store.run_finish(
                conn, run.id, owner=owner, status=status, safe_error=safe_error
            )
        if finished is None:
            raise LeaseLost()
        observe.log_run_finished(finished)
        return finished

    def _finish_with_error(self, conn: Connection, run: Run, owner: str, error: RunError) -> Run:
        code = safe_errors.safe_code(error.code)
        with conn.transaction():
            store.run_items_fail_pending(conn, run.id, error_code=code)
            finished = store.run_finish(
                conn,
                run.id,
                owner=owner,
                status=RunStatus.FAILED,
                safe_error=SafeError(code, error.context),
            )
        if finished is None:
            raise LeaseLost()
        observe.log_run_finished(finished)
        return finished

    def _release(self, run_id: uuid.UUID, owner: str) -> None:
        try:
            with self.pool.connection() as conn:
                store.run_lease_release(conn, run_id, owner=owner)
        except psycopg.Error as exc:
            log.warning(
                "could not release run %s (the lease will expire): %s",
                run_id,
                describe_exception(exc),
            )
