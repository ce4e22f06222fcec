"""Requests whose message does not parse (a string that is not UTF-8, a
truncated field): INVALID_ARGUMENT with a plain message and one log line,
instead of grpc's UNKNOWN naming a Python exception after a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

MESSAGE = "the request message does not parse (for example, a string that is not UTF-8)"


class Unparsable:
    """Stands for a request message that did not parse."""


UNPARSABLE = Unparsable()


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, except that a message that does not parse becomes
    UNPARSABLE (for refuse_unparsable) instead of grpc's UNKNOWN."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return UNPARSABLE

    return deserialize


async def refuse_unparsable(method: str, context: grpc.aio.ServicerContext) -> None:
    log.info("refused %s: the request message does not parse", method)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MESSAGE)
