"""Strips secrets from text that may reach a log line (kept where runsvc's
modules import it; the one copy lives in runsvc-observe, which the gateway
shares)."""

from runsvc_observe.redact import describe_exception, redact

__all__ = ["describe_exception", "redact"]
