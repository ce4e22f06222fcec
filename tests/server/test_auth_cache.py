"""The interceptor's token cache and last-used bookkeeping: lookups at most
once per cache time, revocation effective after it, last_used_at written
at most once per touch interval."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from runsvc.server import auth
from runsvc.server.auth import Authenticator, bearer_token
from runsvc.store.auth import TokenRow
from runsvc.tokens import generate_token, hash_token
from tests.support.auth import new_token
from tests.support.db import query_one
from tests.support.runs import start
from tests.support.seeding import seed_tenant


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakePool:
    @contextlib.asynccontextmanager
    async def connection(self):
        yield object()


@pytest.fixture
def lookups(monkeypatch):
    """Tokens the fake store knows (key id -> row), and what it was asked."""
    rows: dict[str, TokenRow | None] = {}
    asked: list[str] = []
    touched: list[int] = []

    async def get(conn, key_id):
        asked.append(key_id)
        return rows.get(key_id)

    async def touch(conn, token_id, *, touch_after):
        touched.append(token_id)

    monkeypatch.setattr(auth.store, "token_get_active_by_key", get)
    monkeypatch.setattr(auth.store, "token_touch", touch)
    return rows, asked, touched


def row_for(token: str, token_id: int = 1) -> TokenRow:
    return TokenRow(token_id, "t", hash_token(token), "viewer", True, [], None)


def test_cache_hits_skip_the_database_until_the_cache_time_passes(lookups):
    rows, asked, _ = lookups
    token, key_id = generate_token()
    rows[key_id] = row_for(token)
    clock = FakeClock()
    authenticator = Authenticator(FakePool(), cache_seconds=5, clock=clock)

    async def scenario():
        for _ in range(100):
            assert (await authenticator.authenticate(token)).name == "t"
        assert len(asked) == 1
        rows[key_id] = None  # revoked
        clock.now += 4.9
        assert await authenticator.authenticate(token) is not None  # still trusted
        clock.now += 0.2
        assert await authenticator.authenticate(token) is None  # the cache expired
        assert len(asked) == 2

    asyncio.run(scenario())


def test_malformed_tokens_never_reach_the_database(lookups):
    _, asked, _ = lookups
    authenticator = Authenticator(FakePool(), clock=FakeClock())

    async def scenario():
        for token in ("", "x", "rsvc_", "rsvc_zzzzzzzzzzzzzzzz_" + "a" * 43, "a" * 10_000):
            assert await authenticator.authenticate(token) is None

    asyncio.run(scenario())
    assert asked == []


def test_a_wrong_secret_with_a_real_key_id_is_refused(lookups):
    rows, _, touched = lookups
    token, key_id = generate_token()
    rows[key_id] = row_for(token)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    authenticator = Authenticator(FakePool(), clock=FakeClock())
    assert asyncio.run(authenticator.authenticate(forged)) is None
    assert touched == []  # a failed attempt is not a use


def test_a_flood_of_distinct_tokens_keeps_the_cache_bounded(lookups, monkeypatch):
    monkeypatch.setattr(auth, "_CACHE_LIMIT", 50)
    authenticator = Authenticator(FakePool(), clock=FakeClock())

    async def scenario():
        for _ in range(500):
            await authenticator.authenticate(generate_token()[0])

    asyncio.run(scenario())
    assert len(authenticator._cache) <= 50


@pytest.mark.parametrize(
    "metadata, token",
    [
        ((), None),
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer   abc  "),), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer"),), None),
        ((("authorization", "Bearer "),), None),
        ((("authorization", "Bearer a"), ("authorization", "Bearer a")), None),
        ((("x-authorization", "Bearer abc"),), None),
        (None, None),
    ],
)
def test_bearer_token_parsing(metadata, token):
    assert bearer_token(metadata) == token


def test_last_used_is_written_at_most_once_per_touch_interval(make_stack):
    stack = make_stack(RUNSVC_AUTH_CACHE_SECONDS="0.2", RUNSVC_AUTH_TOUCH_SECONDS="4")
    stack.start_server()
    name = "touch-test"
    stub = stack.stub(token=new_token(stack.database_url, name=name))
    tenant = seed_tenant(stack.database_url).external_id

    def last_used():
        return query_one(
            stack.database_url, "SELECT last_used_at FROM api_tokens WHERE name = %s", name
        )[0]

    start(stub, tenant, "snapshot_capture")
    first = last_used()
    assert first is not None
    for _ in range(4):  # each call after the cache time looks the token up again ...
        time.sleep(0.25)
        start(stub, tenant, "snapshot_capture")
    assert last_used() == first  # ... but does not write
    time.sleep(4.1)
    start(stub, tenant, "snapshot_capture")
    assert last_used() > first
