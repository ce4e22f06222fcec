"""RunService: translate proto <-> domain and call one operation each."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable

import grpc
from psycopg_pool import AsyncConnectionPool
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.model import Run, RunType
from runsvc.server.auth import current_principal
from runsvc.server.convert import run_to_proto
from runsvc.server.status import status_from_errors
from runsvc.server.watch_hub import WatchHub
from runsvc.store import auth as auth_store
from runsvc.store import runs as store
from runsvc.store.auth import AuditEvent
from runsvc.store.errors import translate_errors
from runsvc.tokens import Role
from runsvc.validation import (
    FieldViolation,
    InvalidArgument,
    check_address,
    check_run_id,
    check_start_options,
)

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
        dispatch: Callable[[uuid.UUID], None],
        *,
        max_item_ids: int,
        redispatch_seconds: float,
    ) -> None:
        self._pool = pool
        self._hub = hub
        self._dispatch = dispatch
        self._max_item_ids = max_item_ids
        self._redispatch_seconds = redispatch_seconds

    async def StartRun(
        self, request: runs_pb2.StartRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.StartRunResponse:
        async with status_from_errors(context):
            check_address(request.tenant_external_id, request.run_type)
            opts = request.options
            options = check_start_options(
                opts.target_object_id if opts.HasField("target_object_id") else None,
                opts.payload_hash if opts.HasField("payload_hash") else None,
                list(opts.item_ids.values) if opts.HasField("item_ids") else None,
                max_item_ids=self._max_item_ids,
            )
            new = store.NewRun(
                tenant_external_id=request.tenant_external_id,
                run_type=RunType(request.run_type),
                target_object_id=options.target_object_id,
                payload_hash=options.payload_hash,
                item_ids=options.item_ids,
            )
            caller = current_principal()
            with translate_errors():
                # The run and its audit record commit together, or neither does.
                async with self._pool.connection() as conn, conn.transaction():
                    run, reused = await store.run_insert_or_reuse(
                        conn, new, redispatch_after=self._redispatch_seconds
                    )
                    await auth_store.audit_insert(
                        conn,
                        AuditEvent(
                            action="run.start",
                            token_name=caller.name if caller else "-",
                            tenant_external_id=run.tenant_external_id,
                            run_id=run.id,
                            run_type=run.run_type.value,
                            reused=reused,
                        ),
                    )
            if not reused:
                # After commit; if this message is lost the reaper sends it again.
                self._dispatch(run.id)
            return runs_pb2.StartRunResponse(reused=reused, run=run_to_proto(run))

    async def GetRun(
        self, request: runs_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.GetRunResponse:
        async with status_from_errors(context):
            run = await self._find(request)
            if run is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "run not found")
            return runs_pb2.GetRunResponse(run=run_to_proto(run))

    async def WatchRun(
        self, request: runs_pb2.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[runs_pb2.WatchRunResponse]:
        async with status_from_errors(context):
            check_address(request.tenant_external_id, request.run_type)
            run_id = check_run_id(request.run_id)
            if request.HasField("after_version") and request.after_version < 0:
                raise InvalidArgument([FieldViolation("after_version", "must not be negative")])
            sent_version = request.after_version if request.HasField("after_version") else 0
            async with self._hub.watch(run_id) as watcher:
                current = await self._find(request)
                if current is None:
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
                watcher.offer(current)
                while True:
                    latest = watcher.latest
                    assert latest is not None
                    if latest.status.terminal and latest.version <= sent_version:
                        return  # the caller has already seen the end
                    run = await watcher.next_after(sent_version)
                    yield runs_pb2.WatchRunResponse(run=run_to_proto(run))
                    sent_version = run.version
                    if run.status.terminal:
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

    async def _find(self, request: runs_pb2.GetRunRequest | runs_pb2.WatchRunRequest) -> Run | None:
        check_address(request.tenant_external_id, request.run_type)
        run_id = check_run_id(request.run_id)
        with translate_errors():
            async with self._pool.connection() as conn:
                return await store.run_get(
                    conn,
                    tenant=request.tenant_external_id,
                    run_type=request.run_type,
                    run_id=run_id,
                )
