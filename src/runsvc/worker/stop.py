"""Cooperative stop: SIGTERM or SIGINT, to the worker process or its whole
group, becomes one flag that every loop checks, with a grace deadline."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from runsvc.source.port import Deadline

log = logging.getLogger(__name__)


class StopSignal:
    """Asked once; `deadline` is when the grace period ends."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._deadline: Deadline | None = None

    def request(self) -> bool:
        """Asks every loop to stop; True for the first request only."""
        with self._lock:
            if self._event.is_set():
                return False
            self._deadline = Deadline(time.monotonic() + self.grace_seconds)
            self._event.set()
            return True

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def deadline(self) -> Deadline | None:
        return self._deadline

    def wait(self, timeout: float) -> bool:
        """Sleeps up to `timeout` seconds, or less when a stop is asked for."""
        return self._event.wait(timeout)


def install_signal_handlers(stop: StopSignal, on_first: Callable[[], None]) -> None:
    """Makes SIGTERM and SIGINT ask `stop` (from the process's main thread).

    Dramatiq's CLI forwards a signal of the main process to each worker
    process, so a signal to the whole group arrives twice (and its own
    handler exits at once on the second). Here the first one starts the
    cooperative stop and tells Dramatiq to shut down (`on_first`, then its
    own handler, which makes it stop consuming and wait for the worker
    threads); later ones are only logged.
    """
    dramatiq_handler = signal.getsignal(signal.SIGTERM)

    def handle(signum: int, frame: FrameType | None) -> None:
        if not stop.request():
            log.info("%s: already stopping", signal.Signals(signum).name)
            return
        log.info(
            "%s: stopping within %.0f s (the run in hand is given back at its next batch)",
            signal.Signals(signum).name,
            stop.grace_seconds,
        )
        on_first()
        if callable(dramatiq_handler):
            dramatiq_handler(signal.SIGTERM, frame)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
