"""The Dramatiq actor; `runsvc worker` points Dramatiq at this module.

Importing it builds the broker from RUNSVC_BROKER_URL. The actor stays thin:
a message carries only a run id, and the executor does the rest.
"""

from __future__ import annotations

import uuid

import dramatiq

from runsvc.broker import RUN_ACTOR_NAME, build_broker
from runsvc.config import Settings
from runsvc.observe.logging import configure_process_logging
from runsvc.worker.runtime import WorkerRuntime
from runsvc_observe.tracing import configure_tracing

# Imported in each of Dramatiq's worker processes, after the fork: the log
# format and tracing are set up here, per process.
configure_process_logging()
configure_tracing("runsvc-worker")
settings = Settings.from_env()
broker = build_broker(settings.broker_url)
runtime = WorkerRuntime(settings)
broker.add_middleware(runtime)
dramatiq.set_broker(broker)

# Runs may take hours; the lease, not Dramatiq's time limit, says whether a
# worker is still on it. Retries are the reaper's job (with attempts counted
# in the run row), so a message is never retried by Dramatiq itself.
_A_WEEK_MS = 7 * 24 * 3600 * 1000


@dramatiq.actor(
    actor_name=RUN_ACTOR_NAME,
    queue_name=settings.queue_name,
    max_retries=0,
    time_limit=_A_WEEK_MS,
)
def execute_run(run_id: str) -> None:
    try:
        parsed = uuid.UUID(run_id)
    except ValueError:
        return  # not a run of ours: nothing to do, nothing to retry
    runtime.require_executor().execute(parsed)
