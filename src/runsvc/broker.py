"""The Dramatiq broker named by RUNSVC_BROKER_URL, and the one message runsvc
sends: {run_id} to the execute_run actor. Postgres stays the source of truth;
a message only says "look at this run"."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import urlsplit

import dramatiq
import psycopg
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq_postgres import PostgresBroker
from dramatiq_postgres import init as init_postgres_queue

from runsvc.config import ConfigError

RUN_ACTOR_NAME = "execute_run"

log = logging.getLogger(__name__)


def broker_kind(url: str) -> str:
    scheme = urlsplit(url).scheme
    kinds = {
        "postgresql": "postgres",
        "postgres": "postgres",
        "amqp": "rabbitmq",
        "amqps": "rabbitmq",
        "redis": "redis",
        "rediss": "redis",
    }
    if scheme not in kinds:
        raise ConfigError("RUNSVC_BROKER_URL must start with postgresql://, amqp:// or redis://")
    return kinds[scheme]


def build_broker(url: str) -> dramatiq.Broker:
    kind = broker_kind(url)
    if kind == "postgres":
        # Results are never used: the run row is the result.
        return PostgresBroker(url=url, results=False)
    if kind == "rabbitmq":
        # A send returns once RabbitMQ has the message, so a failed send is
        # known (and sent again) instead of lost in a dead connection.
        return RabbitmqBroker(url=url, confirm_delivery=True)
    return RedisBroker(url=url)


def prepare_broker(url: str) -> None:
    """Creates what the broker needs before first use (the Postgres queue
    tables; RabbitMQ and Redis declare queues themselves)."""
    if broker_kind(url) == "postgres":
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            init_postgres_queue(cur)


def run_message(queue_name: str, run_id: uuid.UUID) -> dramatiq.Message:
    """The one message runsvc sends: execute_run(run_id)."""
    return dramatiq.Message(
        queue_name=queue_name,
        actor_name=RUN_ACTOR_NAME,
        args=(str(run_id),),
        kwargs={},
        options={},
    )


class Dispatcher:
    """Sends execute_run messages; safe to call from any thread."""

    def __init__(self, broker: dramatiq.Broker, queue_name: str) -> None:
        self.broker = broker
        self.queue_name = queue_name
        broker.declare_queue(queue_name)

    def send(self, run_id: uuid.UUID) -> None:
        self.broker.enqueue(run_message(self.queue_name, run_id))

    def close(self) -> None:
        self.broker.close()
