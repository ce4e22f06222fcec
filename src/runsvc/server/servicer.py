"""RunService: translate proto <-> domain and call one operation each."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc import safe_errors
from runsvc.model import RunState, RunType, SafeError
from runsvc.observe.metrics import server as metrics
from runsvc.observe.runs import log_run_started
from runsvc.server import page_tokens
from runsvc.server.auth import current_principal
from runsvc.server.convert import (
    OUTCOME_FROM_PROTO,
    STATUS_FROM_PROTO,
    item_to_proto,
    run_to_proto,
)
from runsvc.server.dispatch import RunDispatch
from runsvc.server.status import status_from_errors
from runsvc.server.watch_hub import WatchHub
from runsvc.store import auth as auth_store
from runsvc.store import runs as store
from runsvc.store.auth import AuditEvent
from runsvc.tokens import Role
from runsvc.validation import (
    FieldViolation,
    InvalidArgument,
    check_request,
    run_id_of,
    start_options,
)
from runsvc_observe.logging import current_context
from runsvc_observe.tracing import inject_carrier

# ListRuns and ListRunItems: page_size 0 means the default; larger than the
# most is the most (AIP-158).
RUNS_PAGE_DEFAULT = 50
ITEMS_PAGE_DEFAULT = 100
PAGE_MAX = 1000

log = logging.getLogger(__name__)

CALLER_ROLE = {
    Role.VIEWER: runs_pb2.CALLER_ROLE_VIEWER,
    Role.OPERATOR: runs_pb2.CALLER_ROLE_OPERATOR,
}


class RunService(runs_pb2_grpc.RunServiceServicer):
    def __init__(
        self,
        pool: AsyncConnectionPool,
        hub: WatchHub,
        dispatch: RunDispatch,
        *,
        max_item_ids: int,
        redispatch_seconds: float,
        max_watches: int = 10_000,
        queue_name: str | None = None,
    ) -> None:
        self._pool = pool
        self._hub = hub
        self._dispatch = dispatch
        self._max_item_ids = max_item_ids
        self._redispatch_seconds = redispatch_seconds
        self._max_watches = max_watches
        # The workers' queue: a run records it, and only its queue's workers
        # claim it (fair scheduling picks the run, the message only wakes).
        self._queue_name = queue_name

    async def StartRun(
        self, request: runs_pb2.StartRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.StartRunResponse:
        async with status_from_errors(context):
            check_request(request)
            options = start_options(request, max_item_ids=self._max_item_ids)
            new = store.NewRun(
                tenant_external_id=request.tenant_external_id,
                run_type=RunType(request.run_type),
                target_object_id=options.target_object_id,
                payload_hash=options.payload_hash,
                item_ids=options.item_ids,
                request_id=current_context().get("request_id"),
                trace_context=inject_carrier() or None,
            )
            caller = current_principal()
            run_id = uuid.uuid4()
            try:
                # The run, its audit row and (Postgres broker) its message
                # commit together in one round trip, or none of them does.
                async with self._pool.connection() as conn:
                    run, reused = await store.run_insert_or_reuse(
                        conn,
                        new,
                        run_id=run_id,
                        token_name=caller.name if caller else "-",
                        redispatch_after=self._redispatch_seconds,
                        message=self._dispatch.queued_message(run_id),
                        queue=self._queue_name,
                    )
            except store.TenantNotFound:
                await context.abort(grpc.StatusCode.NOT_FOUND, "tenant not found")
            log_run_started(run, reused)
            metrics.runs_started.labels(run.run_type.value, "true" if reused else "false").inc()
            if not reused:
                # Postgres broker: wakes the workers. RabbitMQ/Redis: queues
                # the message to send; if it is lost, the reaper sends it
                # again after the dispatch time.
                self._dispatch.after_commit(run.id)
            return runs_pb2.StartRunResponse(reused=reused, run=run_to_proto(run))

    async def GetRun(
        self, request: runs_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.GetRunResponse:
        async with status_from_errors(context):
            check_request(request)
            run_id = run_id_of(request)
            async with self._pool.connection() as conn:
                run = await _addressed_run(conn, request, run_id)
            if run is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "run not found")
            return runs_pb2.GetRunResponse(run=run_to_proto(run))

    async def WatchRun(
        self, request: runs_pb2.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[runs_pb2.WatchRunResponse]:
        async with status_from_errors(context):
            check_request(request)
            run_id = run_id_of(request)
            sent_version = request.after_version if request.HasField("after_version") else 0
            if self._hub.watcher_count >= self._max_watches:
                # Refused at once rather than accepted and then starved.
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this server is at its limit of {self._max_watches} watches; retry later",
                )
            async with self._hub.watch(run_id) as watcher:
                current = await watcher.first()
                if (
                    current is None
                    or current.state.tenant_external_id != request.tenant_external_id
                    or current.state.run_type != request.run_type
                ):
                    await context.abort(grpc.StatusCode.NOT_FOUND, "run not found")
                if sent_version > current.version:
                    # A version the run never had: resuming from it would skip states.
                    raise InvalidArgument(
                        [
                            FieldViolation(
                                "after_version",
                                f"is newer than the run's current version {current.version}",
                            )
                        ]
                    )
                while True:
                    latest = watcher.latest
                    assert latest is not None
                    if latest.state.status.terminal and latest.version <= sent_version:
                        return  # the caller has already seen the end
                    snapshot = await watcher.next_after(sent_version)
                    yield snapshot.response()
                    sent_version = snapshot.version
                    if snapshot.state.status.terminal:
                        return

    async def GetCaller(
        self, request: runs_pb2.GetCallerRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.GetCallerResponse:
        caller = current_principal()
        assert caller is not None, "the auth interceptor runs first"
        return runs_pb2.GetCallerResponse(
            token_name=caller.name,
            role=CALLER_ROLE[caller.role],
            all_tenants=caller.all_tenants,
            tenants=sorted(caller.tenants),
        )

    # -- operators' extensions --

    async def ListRuns(
        self, request: runs_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.ListRunsResponse:
        async with status_from_errors(context):
            check_request(request)
            selection = store.RunFilter(
                tenant_external_id=request.tenant_external_id,
                run_types=sorted(set(request.run_types)) or None,
                statuses=sorted({STATUS_FROM_PROTO[s].value for s in request.statuses}) or None,
                target_object_id=(
                    request.target_object_id if request.HasField("target_object_id") else None
                ),
                created_after=_when(request, "created_after"),
                created_before=_when(request, "created_before"),
            )
            listing = page_tokens.listing("runs", selection)
            after = _run_position(page_tokens.decode(request.page_token, listing))
            size = _page_size(request.page_size, RUNS_PAGE_DEFAULT)
            async with self._pool.connection() as conn:
                # One more than the page: whether another page follows.
                runs = await store.run_list(conn, selection, after=after, limit=size + 1)
            response = runs_pb2.ListRunsResponse(runs=[run_to_proto(r) for r in runs[:size]])
            if len(runs) > size:
                last = runs[size - 1]
                response.next_page_token = page_tokens.encode(
                    [last.created_at.isoformat(), str(last.id)], listing
                )
            return response

    async def ListRunItems(
        self, request: runs_pb2.ListRunItemsRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.ListRunItemsResponse:
        async with status_from_errors(context):
            check_request(request)
            run_id = run_id_of(request)
            outcomes = sorted({OUTCOME_FROM_PROTO[o] for o in request.outcomes}) or None
            listing = page_tokens.listing("items", str(run_id), outcomes)
            position = page_tokens.decode(request.page_token, listing)
            if position is not None and not (
                len(position) == 1 and isinstance(position[0], int) and position[0] >= 0
            ):
                raise page_tokens.bad_position()
            size = _page_size(request.page_size, ITEMS_PAGE_DEFAULT)
            async with self._pool.connection() as conn:
                run = await _addressed_run(conn, request, run_id)
                if run is None:
                    await context.abort(grpc.StatusCode.NOT_FOUND, "run not found")
                items = await store.run_items_page(
                    conn,
                    run_id,
                    outcomes=outcomes,
                    after_position=position[0] if position else -1,
                    limit=size + 1,
                )
            response = runs_pb2.ListRunItemsResponse(items=[item_to_proto(i) for i in items[:size]])
            if len(items) > size:
                response.next_page_token = page_tokens.encode([items[size - 1].position], listing)
            return response

    async def CancelRun(
        self, request: runs_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CancelRunResponse:
        async with status_from_errors(context):
            check_request(request)
            run_id = run_id_of(request)
            address = {
                "tenant": request.tenant_external_id,
                "run_type": request.run_type,
                "run_id": run_id,
            }
            async with self._pool.connection() as conn, conn.transaction():
                run = await store.run_cancel(
                    conn, **address, safe_error=SafeError(safe_errors.CANCELLED, {})
                )
                if run is None:
                    run = await store.run_get(conn, **address)
                    if run is None:
                        await context.abort(grpc.StatusCode.NOT_FOUND, "run not found")
                    if run.safe_error is None or run.safe_error.code != safe_errors.CANCELLED:
                        await context.abort(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"the run has already ended ({run.status}); "
                            "only queued and running runs can be cancelled",
                        )
                await _audit(conn, "run.cancel", run)
            return runs_pb2.CancelRunResponse(run=run_to_proto(run))

    async def RetryRun(
        self, request: runs_pb2.RetryRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.RetryRunResponse:
        async with status_from_errors(context):
            check_request(request)
            async with self._pool.connection() as conn, conn.transaction():
                source = await _addressed_run(conn, request, run_id_of(request))
                if source is None:
                    await context.abort(grpc.StatusCode.NOT_FOUND, "run not found")
                if not source.status.terminal or source.safe_error is None:
                    await context.abort(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"the run is {source.status}: only a failed or partial run can be retried",
                    )
                # The new run and (Postgres broker) its message commit
                # together, as in StartRun.
                run_id = uuid.uuid4()
                run, reused = await store.run_retry_insert_or_reuse(
                    conn,
                    source,
                    run_id=run_id,
                    redispatch_after=self._redispatch_seconds,
                    message=self._dispatch.queued_message(run_id),
                    request_id=current_context().get("request_id"),
                    trace_context=inject_carrier() or None,
                    queue=self._queue_name,
                )
                await _audit(conn, "run.retry", run, reused=reused)
            log_run_started(run, reused)
            if not reused:
                self._dispatch.after_commit(run.id)
            return runs_pb2.RetryRunResponse(reused=reused, run=run_to_proto(run))


async def _addressed_run(
    conn: AsyncConnection,
    request: runs_pb2.GetRunRequest | runs_pb2.ListRunItemsRequest | runs_pb2.RetryRunRequest,
    run_id: uuid.UUID,
) -> RunState | None:
    """The run a request addresses by tenant, type and id (None: not found)."""
    return await store.run_get(
        conn, tenant=request.tenant_external_id, run_type=request.run_type, run_id=run_id
    )


async def _audit(
    conn: AsyncConnection, action: str, run: RunState, *, reused: bool | None = None
) -> None:
    caller = current_principal()
    await auth_store.audit_insert(
        conn,
        AuditEvent(
            action=action,
            token_name=caller.name if caller else "-",
            tenant_external_id=run.tenant_external_id,
            run_id=run.id,
            run_type=run.run_type.value,
            reused=reused,
        ),
    )


def _page_size(requested: int, default: int) -> int:
    return default if requested == 0 else min(requested, PAGE_MAX)


def _when(request: runs_pb2.ListRunsRequest, field: str) -> datetime | None:
    if not request.HasField(field):
        return None
    try:
        return getattr(request, field).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument([FieldViolation(field, "is not a valid time")]) from None


def _run_position(position: list | None) -> tuple[datetime, uuid.UUID] | None:
    if position is None:
        return None
    try:
        created_at, run_id = position
        return datetime.fromisoformat(created_at), uuid.UUID(run_id)
    except (ValueError, TypeError):
        raise page_tokens.bad_position() from None
