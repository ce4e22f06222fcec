"""The SSE watch extension: one RunRecord per event, the run version as the
event id, closed after the terminal state; Last-Event-ID resumes without
repeats; a client that goes away cancels the gRPC stream."""

from __future__ import annotations

import time
import uuid

from tests.gateway.contract_check import assert_error, assert_record
from tests.gateway.sse import events
from tests.support.seeding import seed_tenant
from tests.support.waiting import wait_until

SCRIPTED = "tests.support.scripted_source:create"
TERMINAL = {"succeeded", "partial", "failed"}


def watch_url(record: dict) -> str:
    return f"/admin/t/{record['tenantExternalId']}/runs/{record['type']}/{record['id']}/watch"


def test_stream_of_a_real_run_ends_with_its_terminal_state_and_resumes_without_repeats(
    make_stack, make_gateway
):
    stack = make_stack(
        RUNSVC_BATCH_SIZE="2", RUNSVC_TENANT_SOURCE=SCRIPTED, RUNSVC_TEST_SOURCE_DELAY="0.05"
    )
    stack.start_server()
    gateway = make_gateway(stack.target, stack=stack)
    tenant = seed_tenant(stack.database_url, policies=8)
    with gateway.client() as client:
        created = client.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture")
        assert created.status_code == 201
        record = created.json()["run"]

        seen = []
        with client.stream("GET", watch_url(record)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            seen.append(next(stream))
            assert seen[0].json["status"] == "queued"  # before any worker exists
            stack.start_worker()
            for event in stream:
                seen.append(event)
                if event.json["status"] == "running" and event.json["counts"]["succeeded"] > 0:
                    break  # hang up mid-run
        last_id = seen[-1].id
        assert seen[-1].json["status"] == "running"

        resumed = []
        headers = {"Last-Event-ID": last_id}
        with client.stream("GET", watch_url(record), headers=headers) as response:
            assert response.status_code == 200
            resumed = list(events(response))  # ends by itself

    everything = seen + resumed
    for event in everything:
        assert event.event == "message"
        assert_record(event.json)
        assert event.json["id"] == record["id"]
    ids = [int(e.id) for e in everything]
    assert ids == sorted(set(ids)), f"repeats or disorder: {ids}"
    assert all(int(e.id) > int(last_id) for e in resumed)
    final = resumed[-1].json
    assert final["status"] == "succeeded"
    assert final["counts"] == {"total": 8, "succeeded": 8, "failed": 0}
    assert final["finishedAt"] is not None
    assert [e for e in everything if e.json["status"] in TERMINAL] == [resumed[-1]]


def test_watch_of_a_finished_run(http, tenant):
    started = http.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture").json()["run"]

    def finished() -> dict | None:
        current = http.get(watch_url(started).removesuffix("/watch")).json()
        return current if current["status"] in TERMINAL else None

    record = wait_until(finished, timeout=60, what="the run never finished")
    with http.stream("GET", watch_url(record)) as response:
        only = list(events(response))
    assert [e.json for e in only] == [record]  # its terminal state, then the end
    version = int(only[0].id)
    assert version > 2

    # Resuming from an older version: only the newer (latest) state.
    with http.stream("GET", watch_url(record), headers={"Last-Event-ID": "1"}) as response:
        assert [int(e.id) for e in events(response)] == [version]
    # Resuming from the terminal version: nothing to send, the stream ends.
    with http.stream("GET", watch_url(record), headers={"Last-Event-ID": str(version)}) as response:
        assert response.status_code == 200
        assert list(events(response)) == []
    # A version the run never had is an error, before any stream starts.
    for bad in (str(version + 1), "abc", "-1", "1.5", str(2**63)):
        response = http.get(watch_url(record), headers={"Last-Event-ID": bad})
        error = assert_error(response, 400, "INVALID_ARGUMENT")
        assert error["message"].startswith("Last-Event-ID"), error


def test_watch_of_unknown_or_foreign_run_is_404(http, tenant):
    record = http.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture").json()["run"]
    for other in (
        {**record, "tenantExternalId": tenant.external_id + "-other"},
        {**record, "type": "restore_preview"},
        {**record, "id": str(uuid.uuid4())},
    ):
        assert_error(http.get(watch_url(other)), 404, "NOT_FOUND")


def test_head_of_watch_gives_headers_without_a_stream(idle_http, tenant):
    record = idle_http.post(
        f"/admin/t/{tenant.external_id}/runs/snapshot_capture",
        json={"payloadHash": uuid.uuid4().hex},
    ).json()["run"]
    response = idle_http.head(watch_url(record))  # the run stays queued: a GET would not end
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert idle_http.get("/healthz").json()["openWatches"] == 0


def open_watches(client) -> int:
    return client.get("/healthz").json()["openWatches"]


def test_client_disconnect_cancels_the_stream(idle_gateway, tenant):
    with idle_gateway.client() as client:
        # On the idle stack the run stays queued: the stream would never end.
        record = client.post(
            f"/admin/t/{tenant.external_id}/runs/snapshot_capture",
            json={"payloadHash": uuid.uuid4().hex},
        ).json()["run"]
        assert open_watches(client) == 0
        with client.stream("GET", watch_url(record)) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            assert '"status":"queued"' in first
            assert open_watches(client) == 1
            # Idle: keep-alive comments (every second with this gateway's settings).
            assert next(lines) == ""
            assert next(lines) == ": keepalive"
        # The client hung up: the gateway cancels the gRPC stream promptly.
        deadline = time.monotonic() + 5
        while open_watches(client) != 0:
            assert time.monotonic() < deadline, "the watch stream outlived its client"
            time.sleep(0.05)


def test_watch_ends_by_its_deadline_and_resumes(idle_stack, make_gateway, tenant):
    gateway = make_gateway(idle_stack.target, "--watch-timeout", "1", stack=idle_stack)
    with gateway.client() as client:
        record = client.post(
            f"/admin/t/{tenant.external_id}/runs/snapshot_capture",
            json={"payloadHash": uuid.uuid4().hex},
        ).json()["run"]
        began = time.monotonic()
        with client.stream("GET", watch_url(record)) as response:
            first = list(events(response))  # the queued run never ends; the deadline does
        assert time.monotonic() - began < 5
        assert [e.json["status"] for e in first] == ["queued"]
        assert all(e.event == "message" for e in first)  # a deadline is no error
        # The client reconnects with the last id: nothing new, and no repeat.
        headers = {"Last-Event-ID": first[-1].id}
        with client.stream("GET", watch_url(record), headers=headers) as response:
            assert list(events(response)) == []


def test_watch_ends_with_an_error_event_when_the_server_goes_away(make_stack, make_gateway):
    stack = make_stack()
    stack.start_server()  # no worker: the run stays queued
    gateway = make_gateway(stack.target, stack=stack)
    tenant = seed_tenant(stack.database_url)
    with gateway.client() as client:
        record = client.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture").json()["run"]
        with client.stream("GET", watch_url(record)) as response:
            stream = events(response)
            assert next(stream).json["status"] == "queued"
            stack.server.kill()  # dies: no graceful end of its streams
            began = time.monotonic()
            rest = list(stream)  # the stream ends instead of hanging
        assert time.monotonic() - began < 5
        assert [e.event for e in rest] == ["error"]
        assert rest[0].json["error"]["code"] == "UNAVAILABLE"
        assert open_watches(client) == 0


def test_a_watch_beyond_the_servers_limit_is_429(make_stack, make_gateway):
    stack = make_stack(RUNSVC_MAX_WATCHES="1", RUNSVC_REDISPATCH_SECONDS="86400")
    stack.start_server()
    gateway = make_gateway(stack.target, stack=stack)
    tenant = seed_tenant(stack.database_url)
    with gateway.client() as client:
        record = client.post(f"/admin/t/{tenant.external_id}/runs/snapshot_capture").json()["run"]
        with client.stream("GET", watch_url(record)) as held:
            assert held.status_code == 200
            # Kept referenced: a dropped generator closes the response, and
            # with it the watch.
            stream = events(held)
            next(stream)  # served: the current state
            refused = client.get(watch_url(record))
            body = assert_error(refused, 429, "RESOURCE_EXHAUSTED")
            assert "limit" in body["message"]
            stream.close()
