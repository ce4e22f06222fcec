"""gRPC status codes, chosen once: domain and store errors -> aborts with a
safe message (and google.rpc.BadRequest details for invalid arguments)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from runsvc.redact import describe_exception
from runsvc.store.errors import StoreUnavailable
from runsvc.validation import InvalidArgument

log = logging.getLogger(__name__)


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


@contextlib.asynccontextmanager
async def status_from_errors(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """Maps what a servicer method raises to a status, once for all methods."""
    try:
        yield
    except InvalidArgument as error:
        await abort_invalid(context, error)
    except StoreUnavailable:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the run store is unavailable; retry")
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        log.error("unexpected error: %s", describe_exception(exc))
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
