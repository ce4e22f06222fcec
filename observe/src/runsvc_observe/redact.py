"""Strips secrets from text that may reach a log line."""

from __future__ import annotations

import re

_PATTERNS = [
    # credentials in URLs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]*:[^\s/@]*@"), r"\1***@"),
    # runsvc API tokens wherever they appear (rsvc_<key id>_<secret>)
    (re.compile(r"\brsvc_[0-9a-f]{16}_[A-Za-z0-9_-]+"), "rsvc_***"),
    # bearer tokens and authorization headers
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (re.compile(r"(?i)\b(authorization)\s*[:=]\s*\S+"), r"\1: ***"),
    # key=value secrets (libpq conninfo, query strings, config dumps)
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*\S+"), r"\1=***"),
]


# Every pattern above needs one of these words: text without any (nearly
# every log line) is returned after one scan instead of five.
_MAYBE_SECRET = re.compile(r"(?i)://|rsvc_|bearer|authorization|passw|pwd|secret|token|api.?key")


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def describe_exception(exc: BaseException) -> str:
    """The exception's type and its redacted text, for logs only."""
    return f"{type(exc).__name__}: {redact(str(exc))}"
