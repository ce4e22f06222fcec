"""Headless Chromium for the console tests: Debian's `chromium` package
(never a browser that Playwright downloads) driven by Playwright, with every
console error and page error of a page collected, and screenshots saved."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

# As root Chromium needs --no-sandbox; the rest keep it off the network
# (this machine has none) and off a GPU it does not have.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
]
_FAILED_RESPONSE = re.compile(
    r"Failed to load resource: the server responded with a status of (\d+)\b"
)
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    """The system Chromium; a clear failure (never a skip) when it is missing."""
    path = os.environ.get("RUNSVC_TEST_CHROMIUM") or shutil.which("chromium")
    if not path or not Path(path).exists():
        raise RuntimeError(
            "the console tests need Debian's chromium package (/usr/bin/chromium): "
            "`apt-get install chromium` (.ci/run installs it where missing)"
        )
    return path


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


@dataclass
class ConsolePage:
    """A browser tab of its own (its own session storage) that records every
    JavaScript error and console error it sees."""

    page: Page
    screenshots: Path
    errors: list[str] = field(default_factory=list)
    # HTTP statuses a test provokes on purpose: Chromium logs each failed
    # response as a console error ("Failed to load resource: ... 401").
    expected_statuses: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        failed = _FAILED_RESPONSE.match(message.text)
        if failed and int(failed[1]) in self.expected_statuses:
            return
        where = message.location.get("url", "")
        self.errors.append(f"console error: {message.text} ({where})")

    def expect_status(self, status: int) -> None:
        """A response with this status is what the test is about: not an error."""
        self.expected_statuses.add(status)

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        path = self.screenshots / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def horizontal_overflow(self) -> int:
        """How many pixels the page is wider than the window (0: no sideways scrolling)."""
        return self.page.evaluate(
            "document.scrollingElement.scrollWidth - document.documentElement.clientWidth"
        )
