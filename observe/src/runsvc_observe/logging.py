"""One log format for every process and every library logger in it:
`RUNSVC_LOG_FORMAT=json` (one JSON object per line) or `text` (the default).
Each line has time, level, logger and message, then the context fields
(`run_id`, `tenant`, `run_type`, `request_id`, `trace_id`) that apply where
it was logged, then the call's own `extra=` fields. Secrets are masked in
messages and tracebacks whichever logger wrote them."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

from opentelemetry import trace

from runsvc_observe.redact import redact

FORMATS = ("json", "text")
FORMAT_VARIABLE = "RUNSVC_LOG_FORMAT"
LEVEL_VARIABLE = "RUNSVC_LOG_LEVEL"
# The fields a context may carry, in the order lines show them.
CONTEXT_FIELDS = ("request_id", "run_id", "tenant", "run_type", "trace_id")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "runsvc_log_context", default=_EMPTY
)
# A record's own attributes, which are no field of a line (nor is uvicorn's
# coloured twin of its message); everything else on a record is an extra.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def current_context() -> Mapping[str, str]:
    return _context.get()


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Adds fields (None values are left out) to every line logged inside."""
    token = _context.set(_merged(fields))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: object) -> None:
    """Adds fields for the rest of the current context (an RPC's task, say)."""
    _context.set(_merged(fields))


def _merged(fields: Mapping[str, object]) -> Mapping[str, str]:
    return {**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}}


class ContextFilter(logging.Filter):
    """Puts the context fields on the record and masks secrets in its text."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key not in record.__dict__:
                record.__dict__[key] = value
        if "trace_id" not in record.__dict__:
            trace_id = _trace_id()
            if trace_id:
                record.trace_id = trace_id
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def _trace_id() -> str | None:
    # Only when tracing is on: without an SDK the current span is invalid.
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED}


def _iso_time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonLineFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", <context>, <extra>}` per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, default=str, ensure_ascii=False)

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return redact(super().formatException(ei))


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger: message key=value ...` per line, for people."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso_time(record)} {super().format(record)}"
        extras = _extras(record)
        if extras:
            ordered = [k for k in CONTEXT_FIELDS if k in extras]
            ordered += [k for k in extras if k not in CONTEXT_FIELDS]
            line += "  " + " ".join(f"{k}={extras[k]}" for k in ordered)
        return line

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return redact(super().formatException(ei))


def formatter_for(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"{FORMAT_VARIABLE} must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return JsonLineFormatter() if fmt == "json" else TextFormatter()


def log_format() -> str:
    """The format RUNSVC_LOG_FORMAT asks for; ValueError names a bad value."""
    fmt = (os.environ.get(FORMAT_VARIABLE) or "text").strip().lower()
    formatter_for(fmt)
    return fmt


class _RunsvcHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so configuring twice replaces it."""


def configure_logging(
    fmt: str | None = None,
    level: str | None = None,
    *,
    stream: TextIO | None = None,
    quiet: Mapping[str, int] | None = None,
) -> None:
    """Sends every logger of the process (the libraries' too) through one
    handler on the root logger with the chosen format. Libraries that set up
    handlers of their own (uvicorn, Dramatiq) are told not to, or their
    handlers are replaced, so that no line escapes the format."""
    formatter = formatter_for(fmt or log_format())
    handler = _RunsvcHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel((level or os.environ.get(LEVEL_VARIABLE) or "INFO").upper())
    # Library loggers that installed a handler of their own propagate to ours.
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        if logger.handlers:
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.propagate = True
    for name, value in (quiet or {}).items():
        logging.getLogger(name).setLevel(value)
