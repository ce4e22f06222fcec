"""SPEC "Who may do what" over gRPC: every RunService call needs a bearer
token; roles and tenant grants decide the rest; a tenant's runs never leak
to another tenant; health and reflection stay open."""

from __future__ import annotations

import time

import grpc
import pytest
from tenantpilot.runs.v1 import runs_pb2, runs_pb2_grpc

from runsvc.tokens import revoke_token
from tests.support.auth import new_token
from tests.support.db import count_runs, query_all, query_one
from tests.support.runs import get, start
from tests.support.seeding import seed_tenant

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
NO_RUN = "00000000-0000-0000-0000-000000000000"


def get_request(tenant: str, run_id: str = NO_RUN) -> runs_pb2.GetRunRequest:
    return runs_pb2.GetRunRequest(
        tenant_external_id=tenant, run_type="snapshot_capture", run_id=run_id
    )


def watch_request(tenant: str, run_id: str = NO_RUN) -> runs_pb2.WatchRunRequest:
    return runs_pb2.WatchRunRequest(
        tenant_external_id=tenant, run_type="snapshot_capture", run_id=run_id
    )


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code()


def watch_messages(stub: runs_pb2_grpc.RunServiceStub, request) -> tuple[list, grpc.StatusCode]:
    """What a watcher receives before the stream ends, and how it ends."""
    received = []
    try:
        for message in stub.WatchRun(request, timeout=10):
            received.append(message)
            break
    except grpc.RpcError as error:
        return received, error.code()
    return received, grpc.StatusCode.OK


def all_three_calls(stub, tenant: str) -> dict[str, grpc.StatusCode]:
    return {
        "StartRun": code_of(lambda: start(stub, tenant, "snapshot_capture", target="auth")),
        "GetRun": code_of(lambda: stub.GetRun(get_request(tenant), timeout=10)),
        "WatchRun": watch_messages(stub, watch_request(tenant))[1],
    }


# --- authentication --------------------------------------------------------


def test_calls_without_a_token_are_unauthenticated_and_write_nothing(stack, tenant):
    stub = stack.stub(token=None)
    assert all_three_calls(stub, tenant.external_id) == dict.fromkeys(
        ("StartRun", "GetRun", "WatchRun"), UNAUTHENTICATED
    )
    assert count_runs(stack.database_url, tenant.external_id) == 0


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "rsvc_0123456789abcdef_" + "a" * 43,  # a token without the scheme
        "Bearer not-a-runsvc-token",
        "Bearer rsvc_0123456789abcdef_" + "a" * 43,  # well-formed, unknown
        "Bearer " + "x" * 4000,
        "Bearer   rsvc_ ' OR 1=1 --",  # (grpc clients refuse control characters)
        "Bearer%20abc",
    ],
)
def test_malformed_or_unknown_authorization_is_unauthenticated(header, stack, tenant):
    stub = stack.stub(token=None)
    with pytest.raises(grpc.RpcError) as error:
        stub.GetRun(
            get_request(tenant.external_id), metadata=(("authorization", header),), timeout=10
        )
    assert error.value.code() == UNAUTHENTICATED
    assert "rsvc_" not in error.value.details()


def test_oversized_authorization_is_refused_before_any_work(stack, tenant):
    # Between gRPC's soft (8 KiB) and hard metadata limits the transport
    # refuses some calls itself (RESOURCE_EXHAUSTED), at random; the rest
    # reach the interceptor. Either way: refused, never an internal error.
    stub = stack.stub(token=None)
    for _ in range(5):
        with pytest.raises(grpc.RpcError) as error:
            stub.GetRun(
                get_request(tenant.external_id),
                metadata=(("authorization", "Bearer " + "x" * 8000),),
                timeout=10,
            )
        assert error.value.code() in (UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_two_authorization_headers_are_refused(stack, tenant):
    stub = stack.stub(token=None)
    headers = (("authorization", f"Bearer {stack.token}"),) * 2
    with pytest.raises(grpc.RpcError) as error:
        stub.GetRun(get_request(tenant.external_id), metadata=headers, timeout=10)
    assert error.value.code() == UNAUTHENTICATED


def test_a_wrong_secret_for_a_real_key_id_is_unauthenticated(stack, tenant):
    real = new_token(stack.database_url)
    forged = real[: -len("xxxx")] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    assert (
        code_of(
            lambda: stack.stub(token=forged).GetRun(get_request(tenant.external_id), timeout=10)
        )
        == UNAUTHENTICATED
    )
    # The real one works: NOT_FOUND is the answer of an authorised caller.
    assert (
        code_of(lambda: stack.stub(token=real).GetRun(get_request(tenant.external_id), timeout=10))
        == NOT_FOUND
    )


def test_scheme_is_case_insensitive(stack, tenant):
    stub = stack.stub(token=None)
    for scheme in ("bearer", "BEARER"):
        metadata = (("authorization", f"{scheme} {stack.token}"),)
        assert (
            code_of(
                lambda m=metadata: stub.GetRun(
                    get_request(tenant.external_id), metadata=m, timeout=10
                )
            )
            == NOT_FOUND
        )


def test_revoked_token_is_refused_within_the_cache_time(stack, tenant):
    name = f"revoke-{tenant.external_id}"
    token = new_token(stack.database_url, name=name, tenants=[tenant.external_id])
    stub = stack.stub(token=token)
    run = start(stub, tenant.external_id, "snapshot_capture", target="revoke").run
    assert get(stub, run).id == run.id  # cached as valid now
    revoked_at = time.monotonic()
    assert revoke_token(stack.database_url, name)
    while True:
        try:
            get(stub, run)
        except grpc.RpcError as error:
            assert error.code() == UNAUTHENTICATED
            break
        assert time.monotonic() - revoked_at < 5.0 + 1.0, "revocation took longer than the TTL"
        time.sleep(0.1)
    print(f"revocation effective after {time.monotonic() - revoked_at:.2f}s")


def test_health_and_reflection_need_no_token(stack):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = stack.channel()
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == (
        health_pb2.HealthCheckResponse.SERVING
    )


# --- roles -----------------------------------------------------------------


def test_viewer_may_read_and_watch_but_not_start(stack, tenant):
    run = start(stack.stub(), tenant.external_id, "snapshot_capture", target="viewer").run
    viewer = stack.stub(
        token=new_token(stack.database_url, role="viewer", tenants=[tenant.external_id])
    )
    before = count_runs(stack.database_url, tenant.external_id)
    assert (
        code_of(lambda: start(viewer, tenant.external_id, "snapshot_capture", target="viewer-new"))
        == PERMISSION_DENIED
    )
    assert count_runs(stack.database_url, tenant.external_id) == before
    assert get(viewer, run).id == run.id
    received, code = watch_messages(viewer, watch_request(tenant.external_id, run.id))
    assert code == grpc.StatusCode.OK and received[0].run.id == run.id


def test_all_tenants_viewer_cannot_start_either(stack, tenant):
    viewer = stack.stub(token=new_token(stack.database_url, role="viewer"))
    assert code_of(lambda: start(viewer, tenant.external_id, "snapshot_capture")) == (
        PERMISSION_DENIED
    )


# --- tenant isolation ------------------------------------------------------


def test_a_token_for_tenant_a_can_do_nothing_in_tenant_b(stack, database_url):
    tenant_a, tenant_b = seed_tenant(database_url), seed_tenant(database_url)
    run_b = start(stack.stub(), tenant_b.external_id, "snapshot_capture", target="b").run
    before_b = count_runs(database_url, tenant_b.external_id)
    for role in ("operator", "viewer"):
        token_a = new_token(database_url, role=role, tenants=[tenant_a.external_id])
        stub_a = stack.stub(token=token_a)
        assert all_three_calls(stub_a, tenant_b.external_id) == dict.fromkeys(
            ("StartRun", "GetRun", "WatchRun"), PERMISSION_DENIED
        )
        # Addressing B's real run: still refused, and nothing streamed.
        assert (
            code_of(
                lambda s=stub_a: s.GetRun(get_request(tenant_b.external_id, run_b.id), timeout=10)
            )
            == PERMISSION_DENIED
        )
        received, code = watch_messages(stub_a, watch_request(tenant_b.external_id, run_b.id))
        assert (received, code) == ([], PERMISSION_DENIED)
    assert count_runs(database_url, tenant_b.external_id) == before_b


def test_a_run_of_a_asked_for_under_b_is_not_found(stack, database_url):
    tenant_a, tenant_b = seed_tenant(database_url), seed_tenant(database_url)
    run_a = start(stack.stub(), tenant_a.external_id, "snapshot_capture", target="a").run
    for token_b in (
        new_token(database_url, role="viewer", tenants=[tenant_b.external_id]),
        new_token(database_url, role="operator", tenants=[tenant_b.external_id]),
        stack.token,  # even a token for all tenants
    ):
        stub_b = stack.stub(token=token_b)
        assert (
            code_of(
                lambda s=stub_b: s.GetRun(get_request(tenant_b.external_id, run_a.id), timeout=10)
            )
            == NOT_FOUND
        )
        received, code = watch_messages(stub_b, watch_request(tenant_b.external_id, run_a.id))
        assert (received, code) == ([], NOT_FOUND)


def test_a_token_for_several_tenants_reaches_each_of_them(stack, database_url):
    tenants = [seed_tenant(database_url).external_id for _ in range(2)]
    stub = stack.stub(token=new_token(database_url, tenants=tenants))
    for tenant in tenants:
        run = start(stub, tenant, "snapshot_capture", target="multi").run
        assert get(stub, run).tenant_external_id == tenant
    other = seed_tenant(database_url).external_id
    assert code_of(lambda: start(stub, other, "snapshot_capture")) == PERMISSION_DENIED


# --- audit and bookkeeping -------------------------------------------------


def test_every_start_run_is_audited_with_token_tenant_run_and_reuse(stack, tenant):
    name = f"auditor-{tenant.external_id}"
    stub = stack.stub(token=new_token(stack.database_url, name=name))
    first = start(stub, tenant.external_id, "snapshot_capture", target="audit")
    again = start(stub, tenant.external_id, "snapshot_capture", target="audit")
    assert not first.reused and again.reused and first.run.id == again.run.id
    rows = query_all(
        stack.database_url,
        "SELECT token_name, tenant_external_id, run_id::text, run_type, reused, action "
        "FROM audit_events WHERE tenant_external_id = %s ORDER BY id",
        tenant.external_id,
    )
    assert rows == [
        (name, tenant.external_id, first.run.id, "snapshot_capture", False, "run.start"),
        (name, tenant.external_id, first.run.id, "snapshot_capture", True, "run.start"),
    ]


def test_refused_start_run_is_not_audited(stack, tenant):
    viewer = stack.stub(token=new_token(stack.database_url, role="viewer"))
    code_of(lambda: start(viewer, tenant.external_id, "snapshot_capture"))
    code_of(lambda: start(stack.stub(), tenant.external_id, "not_a_type"))
    assert query_one(
        stack.database_url,
        "SELECT count(*) FROM audit_events WHERE tenant_external_id = %s",
        tenant.external_id,
    ) == (0,)


def test_only_a_hash_is_stored_and_last_use_is_recorded(stack, tenant):
    name = f"hash-{tenant.external_id}"
    token = new_token(stack.database_url, name=name)
    row = query_one(stack.database_url, "SELECT * FROM api_tokens WHERE name = %s", name)
    secret = token.rsplit("_", 1)[1]
    assert not any(isinstance(v, str) and secret in v for v in row)
    assert not any(isinstance(v, bytes) and token.encode() in v for v in row)
    assert query_one(
        stack.database_url, "SELECT last_used_at FROM api_tokens WHERE name = %s", name
    ) == (None,)
    code_of(lambda: stack.stub(token=token).GetRun(get_request(tenant.external_id), timeout=10))
    assert query_one(
        stack.database_url,
        "SELECT last_used_at IS NOT NULL FROM api_tokens WHERE name = %s",
        name,
    ) == (True,)


def test_logs_never_print_tokens(stack, tenant):
    """Runs late in this module: the server log has seen many tokens by now."""
    bad = "rsvc_0123456789abcdef_" + "S" * 43
    for header in (f"Bearer {bad}", "Bearer secret-looking-thing"):
        code_of(
            lambda h=header: stack.stub(token=None).GetRun(
                get_request(tenant.external_id), metadata=(("authorization", h),), timeout=10
            )
        )
    tokens = [row[0] for row in query_all(stack.database_url, "SELECT key_id FROM api_tokens")]
    assert stack.token and tokens
    for process in [stack.server, *stack.workers]:
        output = process.output()
        assert stack.token not in output
        assert bad not in output and "secret-looking-thing" not in output
        assert "rsvc_" not in output
    # Refusals are logged, naming at most the public key id.
    assert "GetRun: unknown or revoked token (key id 0123456789abcdef)" in stack.server.output()


def test_concurrent_callers_are_audited_under_their_own_names(stack, tenant):
    """The caller travels with its own RPC (a context variable per call)."""
    from concurrent.futures import ThreadPoolExecutor

    names = [f"concurrent-{i}-{tenant.external_id}" for i in range(4)]
    stubs = {name: stack.stub(token=new_token(stack.database_url, name=name)) for name in names}

    def call(index: int) -> None:
        name = names[index % len(names)]
        start(stubs[name], tenant.external_id, "snapshot_capture", target=f"{name}/{index}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(call, range(80)))
    rows = query_all(
        stack.database_url,
        "SELECT a.token_name, r.target_object_id FROM audit_events a "
        "JOIN runs r ON r.id = a.run_id WHERE a.tenant_external_id = %s",
        tenant.external_id,
    )
    assert len(rows) == 80
    assert all(target.startswith(f"{name}/") for name, target in rows), rows


# --- GetCaller: who the token is ---------------------------------------------


def test_get_caller_describes_the_token_and_needs_no_tenant(stack):
    granted = sorted(["zeta-tenant", "alpha-tenant"])
    viewer = new_token(stack.database_url, role="viewer", tenants=["zeta-tenant", "alpha-tenant"])
    answer = stack.stub(token=viewer).GetCaller(runs_pb2.GetCallerRequest(), timeout=10)
    assert answer.role == runs_pb2.CALLER_ROLE_VIEWER
    assert answer.token_name.startswith("test-viewer-")
    assert not answer.all_tenants
    assert list(answer.tenants) == granted

    operator = stack.stub().GetCaller(runs_pb2.GetCallerRequest(), timeout=10)
    assert operator.role == runs_pb2.CALLER_ROLE_OPERATOR
    assert operator.all_tenants and list(operator.tenants) == []


def test_get_caller_without_a_valid_token_is_unauthenticated(stack):
    request = runs_pb2.GetCallerRequest()
    for token in (None, "rsvc_0123456789abcdef_" + "a" * 43):
        stub = stack.stub(token=token)
        assert code_of(lambda stub=stub: stub.GetCaller(request, timeout=10)) == UNAUTHENTICATED
