"""runsvc_client.RunsClient against the real server, worker and Postgres, and
against a scripted server for retries, metadata and TLS."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from tenantpilot.runs.v1 import runs_pb2

import runsvc_client
from runsvc_client import (
    TLS,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    RetryPolicy,
    RunsClient,
    RunsError,
    Unauthenticated,
    Unavailable,
    is_terminal,
)
from tests.clients.fake_server import Script, make_certs, scripted_server
from tests.support.auth import new_token


@pytest.fixture
def client(stack) -> Iterator[RunsClient]:
    with RunsClient(stack.target, token=stack.token) as made:
        yield made


@pytest.fixture
def idle_client(idle_stack) -> Iterator[RunsClient]:
    with RunsClient(idle_stack.target, token=idle_stack.token) as made:
        yield made


def test_start_watch_and_get_a_run_to_its_terminal_state(client, tenant):
    started = client.start_run(
        tenant=tenant.external_id,
        run_type="snapshot_capture",
        target_object_id=f"client-{uuid.uuid4().hex[:8]}",
        item_ids=tenant.policy_ids,
    )
    assert isinstance(started, runs_pb2.StartRunResponse)
    assert not started.reused
    run = started.run
    assert run.counts.total == len(tenant.policy_ids)

    states = list(client.watch_run(tenant=tenant.external_id, run_type=run.type, run_id=run.id))
    assert states and all(isinstance(s, runs_pb2.RunRecord) for s in states)
    versions = [s.version for s in states]
    assert versions == sorted(set(versions))
    final = states[-1]
    assert is_terminal(final) and not any(is_terminal(s) for s in states[:-1])
    assert final.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert final.counts.succeeded == len(tenant.policy_ids)

    got = client.get_run(tenant=tenant.external_id, run_type=run.type, run_id=run.id)
    assert got == final

    # Resuming after the last version seen sends nothing more: the run is over.
    again = client.watch_run(
        tenant=tenant.external_id, run_type=run.type, run_id=run.id, after_version=final.version
    )
    assert list(again) == []


def test_start_run_returns_the_active_run_for_the_same_dedupe_key(idle_client, tenant):
    kwargs = dict(
        tenant=tenant.external_id,
        run_type="snapshot_capture",
        target_object_id="dedupe",
        payload_hash="h1",
    )
    first = idle_client.start_run(**kwargs)
    second = idle_client.start_run(**kwargs)
    assert not first.reused and second.reused
    assert second.run.id == first.run.id


def test_item_ids_none_means_default_set_and_empty_list_means_no_items(idle_client, tenant):
    default = idle_client.start_run(
        tenant=tenant.external_id, run_type="snapshot_capture", target_object_id="d"
    )
    assert default.run.counts.total == 0  # resolved when the run starts
    empty = idle_client.start_run(
        tenant=tenant.external_id, run_type="snapshot_capture", target_object_id="e", item_ids=[]
    )
    assert empty.run.counts.total == 0
    some = idle_client.start_run(
        tenant=tenant.external_id,
        run_type="snapshot_capture",
        target_object_id="s",
        item_ids=iter(tenant.policy_ids[:2]),
    )
    assert some.run.counts.total == 2


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(run_type="drop_everything"), "run_type"),
        (dict(item_ids=["ok", "a\tb"]), "options.item_ids[1]"),
        (dict(target_object_id="x" * 257), "options.target_object_id"),
    ],
    ids=["run type", "item id", "target"],
)
def test_invalid_argument_is_typed_and_names_the_field(idle_client, tenant, kwargs, field):
    call = {"tenant": tenant.external_id, "run_type": "snapshot_capture", **kwargs}
    with pytest.raises(InvalidArgument) as raised:
        idle_client.start_run(**call)
    error = raised.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.field == field
    assert field in [v.field for v in error.violations]
    assert error.violations[0].description
    assert error.message and field in str(error)
    assert not isinstance(error, grpc.RpcError)


def test_get_run_of_another_type_or_unknown_id_is_not_found(idle_client, tenant):
    # (Same tenant, so that the answer does not depend on the token's grants.)
    run = idle_client.start_run(tenant=tenant.external_id, run_type="snapshot_capture").run
    with pytest.raises(NotFound) as raised:
        idle_client.get_run(tenant=tenant.external_id, run_type="restore_preview", run_id=run.id)
    assert raised.value.code is grpc.StatusCode.NOT_FOUND
    with pytest.raises(NotFound):
        list(
            idle_client.watch_run(
                tenant=tenant.external_id, run_type=run.type, run_id=str(uuid.uuid4())
            )
        )
    with pytest.raises(InvalidArgument) as bad_id:
        idle_client.get_run(tenant=tenant.external_id, run_type=run.type, run_id="nope")
    assert bad_id.value.field == "run_id"


def test_per_call_timeout_overrides_the_default(idle_client, tenant):
    run = idle_client.start_run(tenant=tenant.external_id, run_type="snapshot_capture").run
    began = time.monotonic()
    states = []
    with pytest.raises(DeadlineExceeded) as raised:
        for state in idle_client.watch_run(
            tenant=tenant.external_id, run_type=run.type, run_id=run.id, timeout=1.0
        ):
            states.append(state)  # the queued state; the idle stack never runs it
    assert 0.9 < time.monotonic() - began < 5
    assert [s.status for s in states] == [runs_pb2.RUN_STATUS_QUEUED]
    assert raised.value.code is grpc.StatusCode.DEADLINE_EXCEEDED


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_per_call_timeout_overrides_the_default_of_unary_calls():
    with silent_listener() as target, RunsClient(target, default_timeout=30) as client:
        for call in (
            lambda: client.get_run(tenant="t", run_type="x", run_id="r", timeout=0.5),
            lambda: client.start_run(tenant="t", run_type="x", timeout=0.5),
        ):
            began = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                call()
            assert time.monotonic() - began < 2


DEAD_TARGETS = {
    "nothing listening": lambda: contextlib.nullcontext(f"127.0.0.1:{free_port()}"),
    "unresolvable host": lambda: contextlib.nullcontext("runsvc.invalid:50051"),
    "silent listener": silent_listener,
}


@pytest.mark.parametrize("dead", DEAD_TARGETS, ids=list(DEAD_TARGETS))
def test_a_dead_or_wrong_target_fails_within_the_deadline(dead):
    with DEAD_TARGETS[dead]() as target, RunsClient(target, default_timeout=2) as client:
        calls = {
            "start": lambda: client.start_run(tenant="t", run_type="snapshot_capture"),
            "get": lambda: client.get_run(tenant="t", run_type="snapshot_capture", run_id="r"),
            "watch": lambda: list(
                client.watch_run(tenant="t", run_type="snapshot_capture", run_id="r", timeout=2)
            ),
        }
        for name, call in calls.items():
            began = time.monotonic()
            with pytest.raises((Unavailable, DeadlineExceeded)) as raised:
                call()
            elapsed = time.monotonic() - began
            assert elapsed < 3.5, f"{name} took {elapsed:.1f}s"
            assert isinstance(raised.value, RunsError)
            assert raised.value.code in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            )


def test_nothing_listening_is_unavailable():
    with RunsClient(f"127.0.0.1:{free_port()}", default_timeout=5) as client:
        began = time.monotonic()
        with pytest.raises(Unavailable):
            client.get_run(tenant="t", run_type="snapshot_capture", run_id="r")
        assert time.monotonic() - began < 5  # the retries gave up before the deadline


def test_get_and_start_retry_unavailable_with_backoff():
    script = Script(unavailable_first=2)
    with scripted_server(script) as target, RunsClient(target) as client:
        run = client.get_run(tenant="t", run_type="snapshot_capture", run_id="r1")
        assert run.id == "r1"
        started = client.start_run(tenant="t", run_type="snapshot_capture")
        assert started.run.id == "run-1"
    assert script.calls == {"GetRun": 3, "StartRun": 3}


def test_retries_give_up_after_max_attempts_and_watch_is_not_retried():
    script = Script(unavailable_first=100)
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)
    with scripted_server(script) as target, RunsClient(target, retry=policy) as client:
        with pytest.raises(Unavailable) as raised:
            client.get_run(tenant="t", run_type="snapshot_capture", run_id="r1")
        assert raised.value.message == "try again"
        with pytest.raises(Unavailable):
            list(client.watch_run(tenant="t", run_type="snapshot_capture", run_id="r1"))
    assert script.calls == {"GetRun": 3, "WatchRun": 1}


def test_retries_can_be_turned_off():
    script = Script(unavailable_first=1)
    with (
        scripted_server(script) as target,
        RunsClient(target, retry=None) as client,
        pytest.raises(Unavailable),
    ):
        client.start_run(tenant="t", run_type="snapshot_capture")
    assert script.calls == {"StartRun": 1}


def test_token_is_sent_as_bearer_metadata_on_every_call():
    script = Script()
    with scripted_server(script) as target, RunsClient(target, token="s3cret") as client:
        client.start_run(tenant="t", run_type="snapshot_capture")
        client.get_run(tenant="t", run_type="snapshot_capture", run_id="r")
        assert len(list(client.watch_run(tenant="t", run_type="x", run_id="r"))) == 2
    assert [m.get("authorization") for m in script.metadata] == ["Bearer s3cret"] * 3
    with scripted_server(script := Script()) as target, RunsClient(target) as client:
        client.get_run(tenant="t", run_type="snapshot_capture", run_id="r")
    assert "authorization" not in script.metadata[0]


def test_tls_with_a_ca_and_mutual_tls_with_a_client_certificate(tmp_path):
    certs = make_certs(tmp_path)
    server_tls = grpc.ssl_server_credentials([(certs.server_key, certs.server_cert)])
    with scripted_server(Script(), server_credentials=server_tls) as target:
        with RunsClient(target, tls=certs.ca, token="t") as client:
            assert client.get_run(tenant="t", run_type="x", run_id="r").id == "r"
        with RunsClient(f"localhost:{target.rsplit(':', 1)[1]}", tls=TLS(ca=certs.ca)) as c:
            assert c.get_run(tenant="t", run_type="x", run_id="r").id == "r"
        # Plaintext to a TLS port, or a CA that did not sign it, fails cleanly.
        with RunsClient(target, default_timeout=2) as plain, pytest.raises(Unavailable):
            plain.get_run(tenant="t", run_type="x", run_id="r")
        other = make_certs(tmp_path / "other")
        with (
            RunsClient(target, tls=other.ca, default_timeout=2) as wrong,
            pytest.raises(Unavailable),
        ):
            wrong.get_run(tenant="t", run_type="x", run_id="r")

    mutual = grpc.ssl_server_credentials(
        [(certs.server_key, certs.server_cert)],
        root_certificates=certs.ca,
        require_client_auth=True,
    )
    with scripted_server(Script(), server_credentials=mutual) as target:
        tls = TLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
        with RunsClient(target, tls=tls) as client:
            assert client.get_run(tenant="t", run_type="x", run_id="r").id == "r"
        with (
            RunsClient(target, tls=certs.ca, default_timeout=2) as anonymous,
            pytest.raises(Unavailable),
        ):
            anonymous.get_run(tenant="t", run_type="x", run_id="r")


ERROR_CLASSES = {
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNIMPLEMENTED: "RunsError",
}


@pytest.mark.parametrize("code", ERROR_CLASSES, ids=[c.name for c in ERROR_CLASSES])
def test_every_status_code_becomes_a_typed_error(code):
    expected = getattr(runsvc_client, ERROR_CLASSES[code])
    with scripted_server(Script(abort=code)) as target, RunsClient(target) as client:
        calls = (
            lambda: client.start_run(tenant="t", run_type="x"),
            lambda: client.get_run(tenant="t", run_type="x", run_id="r"),
            lambda: list(client.watch_run(tenant="t", run_type="x", run_id="r")),
        )
        for call in calls:
            with pytest.raises(RunsError) as raised:
                call()
            assert type(raised.value) is expected
            assert raised.value.code is code
            assert raised.value.message == f"scripted {code.name}"
            assert str(raised.value) == f"{code.name}: scripted {code.name}"


def test_a_broken_watch_resumes_from_the_last_version_seen():
    script = Script(watch_breaks=1)
    with scripted_server(script) as target, RunsClient(target) as client:
        states = list(client.watch_run(tenant="t", run_type="x", run_id="r"))
    assert [(s.version, s.status) for s in states] == [
        (1, runs_pb2.RUN_STATUS_RUNNING),
        (2, runs_pb2.RUN_STATUS_SUCCEEDED),
    ]
    assert script.watch_after_versions == [None, 1]


def test_a_watch_whose_server_stays_down_gives_up_with_unavailable():
    script = Script(watch_breaks=1, watch_down_after_break=True)
    with scripted_server(script) as target, RunsClient(target) as client:
        states = []
        began = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            for state in client.watch_run(tenant="t", run_type="x", run_id="r", timeout=10):
                states.append(state)
        assert time.monotonic() - began < 5
    assert [s.version for s in states] == [1]
    assert raised.value.message == "server down"
    # the broken stream, then one reopen at once and three more with backoff
    assert script.watch_after_versions == [None, 1, 1, 1, 1]


def test_get_caller_names_the_tokens_role_and_tenants(stack, tenant):
    viewer = new_token(stack.database_url, role="viewer", tenants=[tenant.external_id])
    with RunsClient(stack.target, token=viewer) as client:
        caller = client.get_caller()
    assert caller.role == runs_pb2.CALLER_ROLE_VIEWER
    assert list(caller.tenants) == [tenant.external_id] and not caller.all_tenants
    with RunsClient(stack.target) as anonymous, pytest.raises(Unauthenticated):
        anonymous.get_caller()
