"""Per-process worker state, made after Dramatiq forks its worker processes
and before any message is consumed: connection pool, tenant source,
executor, reaper, retention loop and the cooperative stop (Dramatiq
middleware)."""

from __future__ import annotations

import logging
import os

import dramatiq
from dramatiq.middleware import Middleware
from psycopg_pool import ConnectionPool

from runsvc.broker import Dispatcher
from runsvc.config import Settings
from runsvc.source.loader import load_source
from runsvc.worker.executor import Executor
from runsvc.worker.maintenance import Maintenance, Retention
from runsvc.worker.reaper import Reaper
from runsvc.worker.stop import StopSignal, install_signal_handlers

log = logging.getLogger(__name__)


class WorkerRuntime(Middleware):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = StopSignal(settings.shutdown_grace_seconds)
        self.pool: ConnectionPool | None = None
        self.executor: Executor | None = None
        self.reaper: Reaper | None = None
        self.maintenance: Maintenance | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Before the worker threads and consumers start: no message can reach
        # the actor before the executor exists (none is lost at boot).
        settings = self.settings
        self.pool = ConnectionPool(
            settings.database_url,
            min_size=1,
            # Per thread: its batch and its lease keeper, and abandoned
            # source calls may still hold one for a while.
            max_size=3 * worker.worker_threads + 4,
            kwargs={"autocommit": True, "application_name": f"runsvc-worker:{os.getpid()}"},
            name="runsvc-worker",
        )
        self.pool.wait(timeout=30)
        dispatcher = Dispatcher(broker, settings.queue_name)
        self.executor = Executor(
            self.pool,
            load_source(settings.tenant_source, self.pool),
            settings,
            stop=self.stop,
            dispatch=dispatcher.send,
        )
        self.reaper = Reaper(
            self.pool,
            dispatcher,
            interval=settings.reaper_interval_seconds,
            redispatch_after=settings.redispatch_seconds,
            stop=self.stop,
        )
        self.maintenance = Maintenance(
            self.pool,
            Retention(settings.retention_days, settings.audit_retention_days),
            interval=settings.maintenance_interval_seconds,
        )

        def stop_taking_messages() -> None:
            # Non-blocking: idle threads take no new message; the ones in
            # hand give their runs back at the next batch.
            for consumer in worker.consumers.values():
                consumer.pause()
            for thread in worker.workers:
                thread.pause()

        install_signal_handlers(self.stop, stop_taking_messages)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert self.reaper is not None and self.maintenance is not None
        self.reaper.start()
        self.maintenance.start()
        log.info(
            "worker ready: %d threads on queue %s", worker.worker_threads, self.settings.queue_name
        )

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stop.request()
        for loop in (self.reaper, self.maintenance):
            if loop is not None:
                loop.stop()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.pool is not None:
            # Abandoned source calls may still hold connections: do not wait.
            self.pool.close(timeout=1)

    def require_executor(self) -> Executor:
        if self.executor is None:  # never: the executor is made before consumers start
            raise RuntimeError("the worker has not booted")
        return self.executor
