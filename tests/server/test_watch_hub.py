"""The watch hub against real Postgres NOTIFY: a watcher that does not read
while a run changes is handed the newest state, not a backlog (SPEC §5)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from psycopg_pool import AsyncConnectionPool

from runsvc.server.watch_hub import Watcher, WatchHub
from tests.support.runs import start

CHANGES = 50


async def _wait_for_version(watcher: Watcher, version: int, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while watcher.latest is None or watcher.latest.version < version:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the hub never offered version {version}")
        await asyncio.sleep(0.02)


async def _changes_while_not_reading(database_url: str, run_id: uuid.UUID, version: int):
    pool = AsyncConnectionPool(
        database_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True)
    hub = WatchHub(database_url, pool)
    await hub.start()
    try:
        async with hub.watch(run_id) as watcher:
            async with await psycopg.AsyncConnection.connect(
                database_url, autocommit=True
            ) as writer:
                for _ in range(CHANGES):  # each commits on its own: one NOTIFY each
                    await writer.execute(
                        "UPDATE runs SET version = version + 1 WHERE id = %s", (run_id,)
                    )
            await _wait_for_version(watcher, version + CHANGES)
            # The stream now reads: one record, the newest, then nothing pending.
            first = await watcher.next_after(version)
            pending = watcher.latest is not None and watcher.latest.version > first.version
            return first.version, pending, hub.listen_connections
    finally:
        await hub.stop()
        await pool.close()


def test_slow_watcher_gets_the_newest_state_not_a_backlog(idle_stack, idle_stub, tenant):
    run = start(idle_stub, tenant.external_id, "snapshot_capture").run
    read_version, pending, listen_connections = asyncio.run(
        _changes_while_not_reading(idle_stack.database_url, uuid.UUID(run.id), run.version)
    )
    assert read_version == run.version + CHANGES
    assert not pending
    assert listen_connections == 1
