"""A small Server-Sent Events reader over httpx, as a legacy client would use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx


@dataclass
class Event:
    id: str | None
    event: str
    data: str

    @property
    def json(self):
        return json.loads(self.data)


def events(response: httpx.Response, comments: list[str] | None = None) -> Iterator[Event]:
    """Parses the stream until the server closes it."""
    fields: dict[str, list[str]] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                yield Event(
                    (fields.get("id") or [None])[-1],
                    (fields.get("event") or ["message"])[-1],
                    "\n".join(fields["data"]),
                )
            fields = {}
            continue
        if line.startswith(":"):
            if comments is not None:
                comments.append(line)
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))
