"""Fixtures of the console tests: one Chromium per session, a fresh tab per
test (its errors checked when the test ends), and a stack whose runs move
slowly enough to be watched: a scripted source that takes its time per call,
one item per progress write, and a token cache of 50 ms (a revocation counts at once)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import PROJECT_ROOT, Stack, running_stack, service_env
from tests.gateway.conftest import Gateway, start_gateway
from tests.support.browser import LAPTOP, ConsolePage, launch

SLOW_SOURCE = {
    "RUNSVC_TENANT_SOURCE": "tests.support.scripted_source:create",
    "RUNSVC_TEST_SOURCE_DELAY": "0.25",
    "RUNSVC_BATCH_SIZE": "1",
    "RUNSVC_FLUSH_SECONDS": "0.05",
    "RUNSVC_AUTH_CACHE_SECONDS": "0.05",
}


# Module scope: Playwright's sync API runs an event loop in this thread while
# it is open, and other modules' tests call asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $RUNSVC_TEST_ARTIFACTS/console, else .artifacts/console
    (gitignored) in the checkout."""
    root = Path(os.environ.get("RUNSVC_TEST_ARTIFACTS", PROJECT_ROOT / ".artifacts"))
    folder = root / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def open_tab(browser: Browser, screenshots: Path) -> Iterator[Callable[..., ConsolePage]]:
    """Opens tabs (each its own browser context); at the end of the test no
    tab may have seen a JavaScript or console error."""
    contexts = []
    tabs: list[ConsolePage] = []

    def open_one(viewport: dict[str, int] = LAPTOP) -> ConsolePage:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        tab = ConsolePage(context.new_page(), screenshots)
        tab.page.set_default_timeout(30_000)
        tabs.append(tab)
        return tab

    try:
        yield open_one
        errors = [error for tab in tabs for error in tab.errors]
        assert errors == [], "the console logged errors"
    finally:
        for context in contexts:
            context.close()


@pytest.fixture(scope="session")
def slow_stack(database_url: str, log_dir: Path) -> Iterator[Stack]:
    with running_stack(service_env(database_url, **SLOW_SOURCE), log_dir) as stack:
        yield stack


@pytest.fixture(scope="session")
def slow_gateway(slow_stack: Stack, log_dir: Path) -> Iterator[Gateway]:
    started = start_gateway(slow_stack.target, log_dir, stack=slow_stack)
    try:
        yield started
    finally:
        started.process.stop()
