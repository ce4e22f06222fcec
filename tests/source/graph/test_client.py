"""The Graph client against the emulator and real Postgres: pacing keeps the
tenant under Graph's budget, a 429 or 503 pauses the tenant until
Retry-After (or a backoff) has passed, tokens are refreshed, and neither the
app's secret nor an access token reaches a log line."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from psycopg_pool import ConnectionPool

from runsvc.config import ConfigError
from runsvc.source.graph.client import GraphClient, Request
from runsvc.source.graph.emulator.tls import make_app_certificate
from runsvc.source.graph.errors import GraphRefused, GraphThrottled, GraphUnavailable
from runsvc.source.graph.settings import Budget, GraphSettings, load_certificate
from tests.support.db import query_one
from tests.support.graph import CLIENT_ID, device_configuration
from tests.support.waiting import wait_until


@pytest.fixture
def pool(database_url):
    with ConnectionPool(database_url, min_size=1, max_size=8, kwargs={"autocommit": True}) as p:
        yield p


def gets(ids: list[str]) -> list[Request]:
    return [Request("GET", f"/deviceManagement/deviceConfigurations/{i}") for i in ids]


def seeded(graph, count: int) -> tuple[str, list[str]]:
    tenant_id = graph.tenant()
    ids = [
        graph.state.put_object(tenant_id, "deviceConfigurations", device_configuration(i))["id"]
        for i in range(count)
    ]
    return tenant_id, ids


def later(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


def test_pacing_keeps_every_call_within_the_budget(graph, pool):
    # A budget small enough to bind within seconds: 100 calls per 2 s window.
    graph.state.configure(window_seconds=2.0, app_requests=100, tenant_requests=200)
    tenant_id, ids = seeded(graph, 20)
    client = GraphClient(graph.settings(Budget(requests=100, writes=10, window_seconds=2.0)), pool)
    failures = []

    def caller() -> None:
        try:
            for _ in range(5):
                responses = client.batch(tenant_id, "v1.0", gets(ids), deadline=later())
                assert [r.status for r in responses] == [200] * len(ids)
        except Exception as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    assert not failures
    calls = graph.state.call_log(tenant_id)
    assert len(calls) == 4 * 5 * 20  # 400 calls: four windows' budget
    assert [c.status for c in calls].count(429) == 0


def test_a_storm_pauses_the_tenant_until_retry_after(graph, pool):
    tenant_id, ids = seeded(graph, 3)
    client = GraphClient(graph.settings(), pool)
    client.batch(tenant_id, "v1.0", gets(ids), deadline=later())
    graph.state.throttle(tenant_id, 1.5)  # Graph answers 429, Retry-After: 2
    responses = client.batch(tenant_id, "v1.0", gets(ids), deadline=later())
    client.close()
    assert [r.status for r in responses] == [200, 200, 200]
    calls = graph.state.call_log(tenant_id)
    throttled = [c for c in calls if c.status == 429]
    assert len(throttled) == 3  # one round, then nothing until the pause ended
    after = [c for c in calls if c.at > throttled[-1].at]
    assert after and min(c.at for c in after) - throttled[-1].at >= 1.9
    paused_until, total = query_one(
        pool.connection().__enter__().info.dsn,
        "SELECT paused_until, throttled_total FROM graph_pacing WHERE graph_tenant_id = %s",
        tenant_id,
    )
    assert paused_until is not None and total == 1


@pytest.mark.parametrize("kind", ["429 without Retry-After", "503"])
def test_throttling_without_a_named_time_backs_off_then_succeeds(graph, pool, kind):
    tenant_id, ids = seeded(graph, 2)
    if kind == "503":
        graph.state.configure(unavailable_ratio=1.0, unavailable_retry_after=1)
    else:
        graph.state.configure(omit_retry_after_ratio=1.0)
        graph.state.throttle(tenant_id, 1.5)
    client = GraphClient(graph.settings(), pool)
    done = threading.Event()
    outcome: list = []

    def call() -> None:
        outcome.append(client.batch(tenant_id, "v1.0", gets(ids), deadline=later()))
        done.set()

    threading.Thread(target=call, daemon=True).start()
    if kind == "503":
        # Let some 503s happen, then Graph recovers.
        wait_until(
            lambda: any(c.status == 503 for c in graph.state.call_log(tenant_id)), timeout=10
        )
        graph.state.configure(unavailable_ratio=0.0)
    assert done.wait(30)
    client.close()
    assert [r.status for r in outcome[0]] == [200, 200]
    statuses = [c.status for c in graph.state.call_log(tenant_id)]
    assert statuses[-2:] == [200, 200] and {429, 503} & set(statuses)


def test_a_wait_past_the_deadline_is_reported_as_throttled(graph, pool):
    tenant_id, ids = seeded(graph, 1)
    client = GraphClient(graph.settings(), pool)
    graph.state.throttle(tenant_id, 5)
    with pytest.raises(GraphThrottled) as raised:
        client.batch(tenant_id, "v1.0", gets(ids), deadline=later(2))
    client.close()
    assert raised.value.retry_after > 2


def test_an_expired_token_is_replaced_and_the_call_goes_through(graph, pool):
    tenant_id, ids = seeded(graph, 2)
    client = GraphClient(graph.settings(), pool)
    client.batch(tenant_id, "v1.0", gets(ids), deadline=later())
    assert graph.state.expire_tokens() == 1  # as if it ran out mid-run
    responses = client.batch(tenant_id, "v1.0", gets(ids), deadline=later())
    client.close()
    assert [r.status for r in responses] == [200, 200]
    assert graph.state.tokens_issued[tenant_id] == 2


def test_a_token_is_refreshed_before_it_expires(graph, pool):
    # MSAL renews a token once less than five minutes are left: with 303 s
    # tokens that is three seconds after each one is issued.
    graph.state.configure(token_lifetime=303)
    tenant_id, ids = seeded(graph, 1)
    client = GraphClient(graph.settings(), pool)

    def renewed() -> bool:
        client.batch(tenant_id, "v1.0", gets(ids), deadline=later())
        return graph.state.tokens_issued[tenant_id] >= 2

    wait_until(renewed, timeout=20, interval=0.2, what="no new token")
    client.close()
    assert 401 not in {c.status for c in graph.state.call_log(tenant_id)}


def test_a_next_link_elsewhere_is_not_followed(graph, pool, monkeypatch):
    tenant_id, _ = seeded(graph, 3)
    graph.state.configure(page_size=2)
    client = GraphClient(graph.settings(), pool)
    values, next_url = client.page(
        tenant_id, "v1.0", "/deviceManagement/deviceConfigurations", deadline=later()
    )
    assert len(values) == 2 and next_url.startswith("/deviceManagement/")
    original = client.send

    def rewritten(*args, **kwargs):
        response = original(*args, **kwargs)
        response.body["@odata.nextLink"] = "https://attacker.example/v1.0/steal"
        return response

    monkeypatch.setattr(client, "send", rewritten)
    with pytest.raises(GraphUnavailable):
        client.page(tenant_id, "v1.0", "/deviceManagement/deviceConfigurations", deadline=later())
    client.close()


def test_secrets_and_tokens_never_reach_the_logs(graph, pool, caplog):
    tenant_id, ids = seeded(graph, 2)
    graph.state.reject_writes(tenant_id, ids[0])
    caplog.set_level(logging.DEBUG)
    settings = graph.settings()
    client = GraphClient(settings, pool)
    client.batch(tenant_id, "v1.0", gets(ids), deadline=later())
    graph.state.expire_tokens()
    client.batch(
        tenant_id,
        "v1.0",
        [
            Request(
                "PATCH", f"/deviceManagement/deviceConfigurations/{ids[0]}", {"displayName": "x"}
            )
        ],
        deadline=later(),
    )
    wrong = graph.settings(client_secret="wrong-" + graph.secret)
    refused = GraphClient(wrong, pool)
    with pytest.raises(GraphRefused):
        refused.batch(tenant_id, "v1.0", gets(ids), deadline=later())
    refused.close()
    client.close()
    issued = [t for t in graph.state._tokens]  # every access token the emulator gave out
    assert len(issued) == 2
    text = caplog.text
    assert graph.secret not in text
    assert all(token not in text for token in issued)
    assert graph.secret not in repr(settings)


def test_a_certificate_signs_in_instead_of_a_secret(graph, pool, tmp_path):
    key_pem, cert_pem = make_app_certificate(CLIENT_ID)
    graph.state.add_app(CLIENT_ID, certificate_pem=cert_pem)  # Entra holds the certificate
    pem = tmp_path / "app.pem"
    pem.write_bytes(cert_pem + key_pem)
    settings = graph.settings(client_secret=None, certificate=load_certificate(str(pem)))
    assert key_pem.decode() not in repr(settings)
    tenant_id, ids = seeded(graph, 2)
    client = GraphClient(settings, pool)
    responses = client.batch(tenant_id, "v1.0", gets(ids), deadline=later())
    client.close()
    assert [r.status for r in responses] == [200, 200]


def test_settings_from_the_environment(monkeypatch, tmp_path, graph):
    for name in list(os.environ):
        if name.startswith("RUNSVC_GRAPH_"):
            monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match="RUNSVC_GRAPH_CLIENT_ID"):
        GraphSettings.from_env()
    monkeypatch.setenv("RUNSVC_GRAPH_CLIENT_ID", CLIENT_ID)
    with pytest.raises(ConfigError, match="exactly one"):
        GraphSettings.from_env()
    monkeypatch.setenv("RUNSVC_GRAPH_CLIENT_SECRET_FILE", str(graph.secret_file))
    settings = GraphSettings.from_env()
    assert settings.client_secret == graph.secret
    assert settings.graph_url == "https://graph.microsoft.com"
    assert (settings.budget.requests, settings.budget.writes) == (1000, 100)
    monkeypatch.setenv("RUNSVC_GRAPH_CLIENT_SECRET", "also")
    with pytest.raises(ConfigError, match="exactly one"):
        GraphSettings.from_env()
    monkeypatch.delenv("RUNSVC_GRAPH_CLIENT_SECRET")
    monkeypatch.setenv("RUNSVC_GRAPH_URL", "http://graph.example")  # a token in clear: no
    with pytest.raises(ConfigError, match="https"):
        GraphSettings.from_env()
    monkeypatch.setenv("RUNSVC_GRAPH_URL", "https://graph.example/")
    monkeypatch.setenv("RUNSVC_GRAPH_BUDGET_WRITES", "50")
    settings = GraphSettings.from_env()
    assert settings.graph_url == "https://graph.example" and settings.budget.writes == 50
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("RUNSVC_GRAPH_CLIENT_SECRET_FILE", str(empty))
    with pytest.raises(ConfigError, match="empty"):
        GraphSettings.from_env()
