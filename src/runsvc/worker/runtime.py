"""Per-process worker state, made after Dramatiq forks its worker processes:
connection pool, tenant source, executor and reaper (Dramatiq middleware)."""

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
from runsvc.worker.measured_source import MeasuredSource
from runsvc.worker.reaper import Reaper
from runsvc.worker.retrying_source import RetryingSource
from runsvc_observe.multiprocess import mark_process_dead
from runsvc_observe.tracing import flush_tracing

log = logging.getLogger(__name__)


class WorkerRuntime(Middleware):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: ConnectionPool | None = None
        self.executor: Executor | None = None
        self.reaper: Reaper | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        settings = self.settings
        self.pool = ConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=2 * worker.worker_threads + 2,
            kwargs={"autocommit": True, "application_name": f"runsvc-worker:{os.getpid()}"},
            name="runsvc-worker",
        )
        self.pool.wait(timeout=30)
        source = RetryingSource(
            MeasuredSource(load_source(settings.tenant_source, self.pool)),
            attempts=settings.source_retries,
            base_delay=settings.source_retry_base_seconds,
        )
        self.executor = Executor(self.pool, source, settings)
        self.reaper = Reaper(
            self.pool,
            Dispatcher(broker, settings.queue_name),
            interval=settings.reaper_interval_seconds,
            redispatch_after=settings.redispatch_seconds,
        )
        self.reaper.start()
        log.info("worker ready: %d threads on queue %s", worker.worker_threads, settings.queue_name)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.reaper is not None:
            self.reaper.stop()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.pool is not None:
            self.pool.close()
        # Forked processes end without atexit hooks: export and clean up now.
        flush_tracing()
        mark_process_dead()

    def require_executor(self) -> Executor:
        if self.executor is None:
            raise RuntimeError("the worker has not booted")
        return self.executor
