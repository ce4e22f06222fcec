"""gRPC status codes, chosen once: domain and store errors -> aborts with a
safe message (and google.rpc.BadRequest details for invalid arguments)."""

from __future__ import annotations

import logging
from types import TracebackType

import grpc
import psycopg
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from runsvc.redact import describe_exception
from runsvc.store.errors import StoreUnavailable
from runsvc.validation import InvalidArgument

log = logging.getLogger(__name__)

# The database cannot be reached or is shutting down (a pool timeout is an
# OperationalError too): retrying may help. The driver's text may name hosts
# and users, so it stays out of the message.
_STORE_DOWN = (StoreUnavailable, psycopg.OperationalError, psycopg.InterfaceError)


async def abort_invalid(context: grpc.aio.ServicerContext, error: InvalidArgument) -> None:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(error), details=[detail])
    )
    # The details join the trailers already set (the request id), not replace them.
    trailers = (*context.trailing_metadata(), *status.trailing_metadata)
    await context.abort(status.code, status.details, trailers)


class _StatusFromErrors:
    """A class, not a generator-based context manager: one is entered per
    call and held by every open stream, so it keeps no generator frame."""

    __slots__ = ("_context",)

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if not isinstance(error, Exception):
            return False  # no error, or a cancellation: as it is
        if isinstance(error, InvalidArgument):
            await abort_invalid(self._context, error)
        elif isinstance(error, _STORE_DOWN):
            await self._context.abort(
                grpc.StatusCode.UNAVAILABLE, "the run store is unavailable; retry"
            )
        elif not isinstance(error, grpc.aio.AbortError):
            log.error("unexpected error: %s", describe_exception(error))
            await self._context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return False  # an abort raised above replaces the error


def status_from_errors(context: grpc.aio.ServicerContext) -> _StatusFromErrors:
    """Maps what a servicer method raises to a status, once for all methods."""
    return _StatusFromErrors(context)
