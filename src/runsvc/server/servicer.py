"""RunService: translate proto <-> domain and call one operation each."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import grpc
from psycopg_pool import AsyncConnectionPool
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.model import RunType
from runsvc.server.auth import current_principal
from runsvc.server.convert import run_to_proto
from runsvc.server.dispatch import RunDispatch
from runsvc.server.status import status_from_errors
from runsvc.server.watch_hub import WatchHub
from runsvc.store import runs as store
from runsvc.store.errors import translate_errors
from runsvc.validation import (
    FieldViolation,
    InvalidArgument,
    check_address,
    check_run_id,
    check_start_options,
)

log = logging.getLogger(__name__)


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
    ) -> None:
        self._pool = pool
        self._hub = hub
        self._dispatch = dispatch
        self._max_item_ids = max_item_ids
        self._redispatch_seconds = redispatch_seconds
        self._max_watches = max_watches

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
            run_id = uuid.uuid4()
            try:
                with translate_errors():
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
                        )
            except store.TenantNotFound:
                await context.abort(grpc.StatusCode.NOT_FOUND, "tenant not found")
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
            check_address(request.tenant_external_id, request.run_type)
            run_id = check_run_id(request.run_id)
            with translate_errors():
                async with self._pool.connection() as conn:
                    run = await store.run_get(
                        conn,
                        tenant=request.tenant_external_id,
                        run_type=request.run_type,
                        run_id=run_id,
                    )
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
