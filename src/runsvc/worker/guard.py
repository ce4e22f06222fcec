"""What may interrupt a run's work in hand: its lease lost, or the stop's
grace period running out. Every wait of the executor goes through here."""

from __future__ import annotations

import threading

from runsvc.source.port import Deadline
from runsvc.worker.lease import LeaseKeeper, LeaseLost
from runsvc.worker.stop import StopSignal

# How often a wait looks at the lease and whether a stop was asked for
# (seconds). The lease keeper learns of a lost lease only every third of a
# lease, and a stop's grace lasts seconds, so half a second loses nothing;
# a shorter tick cost CPU with hundreds of threads waiting on Graph's
# pacing. The end of a grace already known is waited for exactly.
_TICK = 0.5


class StopNow(Exception):
    """The worker is stopping: give the run back (not a failed attempt)."""


class Guard:
    def __init__(self, stop: StopSignal, keeper: LeaseKeeper) -> None:
        self.stop = stop
        self.keeper = keeper

    def check(self) -> None:
        """Raises when the work in hand must be abandoned now."""
        if self.keeper.lost.is_set():
            raise LeaseLost()
        deadline = self.stop.deadline
        if deadline is not None and deadline.expired:
            raise StopNow()

    def at_boundary(self) -> None:
        """Between batches: a stop asked for ends the run's execution here."""
        self.check()
        if self.stop.requested:
            raise StopNow()

    @property
    def cancel_requested(self) -> bool:
        return self.keeper.cancel_requested

    def limit(self, deadline: Deadline) -> Deadline:
        """The deadline, or the end of the stop's grace if that comes first."""
        return deadline.earlier(self.stop.deadline)

    def wait(self, done: threading.Event, deadline: Deadline) -> bool:
        """Waits for `done` until the deadline; False when it passed first.
        Raises when the lease is lost or the grace period ends meanwhile."""
        while not done.wait(self.limit(deadline.earlier(Deadline.after(_TICK))).remaining()):
            self.check()
            if deadline.expired:
                return done.is_set()
        return True

    def sleep(self, seconds: float) -> None:
        """A backoff sleep that a lost lease or the end of grace cuts short."""
        deadline = Deadline.after(seconds)
        never = threading.Event()
        self.wait(never, deadline)
        self.check()
