"""The four run types end to end with Microsoft Graph as the TenantSource,
against the emulator: real server, real worker processes, real Postgres.
Restores are checked in the emulator's state; a refused object fails only
its item; a 429 storm pauses the tenant in every worker process and fails
nothing; an access token that dies mid-run is replaced; no secret reaches a
log line or a safeError."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from google.protobuf.json_format import MessageToDict
from tenantpilot.runs.v1 import runs_pb2

from runsvc.seed import seed
from tests.support.db import query_all, query_one
from tests.support.graph import fill
from tests.support.runs import start, wait_terminal
from tests.support.waiting import wait_until

PER_COLLECTION = 4


def graph_tenant(graph, database_url: str, *, each: int = PER_COLLECTION, consent: bool = True):
    """A runsvc tenant backed by a new Entra tenant holding `each` policies
    in each of the three collections; its backup set is bs-graph."""
    if consent:
        entra = graph.tenant()
    else:
        entra = str(uuid.uuid4())
        graph.state.add_tenant(entra)
    ids = fill(graph.state, entra, each=each)
    name = f"g-{uuid.uuid4().hex[:10]}"
    seed(
        database_url,
        {
            "tenants": [
                {
                    "externalId": name,
                    "graphTenantId": entra,
                    "backupSets": [{"id": "bs-graph", "name": "Graph backup"}],
                }
            ]
        },
    )
    return name, entra, ids


@pytest.fixture
def graph_stack(make_stack, graph):
    stack = make_stack(**graph.env())
    stack.start_server()
    return stack


def run_items(database_url: str, run_id: str) -> list[tuple]:
    return query_all(
        database_url,
        "SELECT item_id, outcome, error_code, detail FROM run_items WHERE run_id = %s"
        " ORDER BY position",
        run_id,
    )


def test_the_four_run_types_against_graph(graph, graph_stack):
    stack = graph_stack
    stack.start_worker(threads=2)
    stub = stack.stub()
    name, entra, ids = graph_tenant(graph, stack.database_url)
    every = [i for collection in ids.values() for i in collection]

    captured = wait_terminal(stub, start(stub, name, "snapshot_capture").run)
    assert captured.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert captured.counts.total == captured.counts.succeeded == 3 * PER_COLLECTION
    snapshots = dict(
        query_all(
            stack.database_url,
            "SELECT s.policy_id, s.payload FROM policy_snapshots s JOIN tenants t"
            " ON t.id = s.tenant_id WHERE t.external_id = %s",
            name,
        )
    )
    assert set(snapshots) == set(every)
    compliance = snapshots[ids["deviceCompliancePolicies"][0]]
    assert compliance["scheduledActionsForRule"][0]["scheduledActionConfigurations"]
    catalog = snapshots[ids["configurationPolicies"][0]]
    assert catalog["name"] and catalog["settings"][0]["settingInstance"]
    for payload in snapshots.values():  # what the service owns is not kept
        assert not {"id", "createdDateTime", "lastModifiedDateTime", "version"} & set(payload)

    added = wait_terminal(
        stub, start(stub, name, "backup_set_add_policies", target="bs-graph", item_ids=every).run
    )
    assert added.status == runs_pb2.RUN_STATUS_SUCCEEDED and added.counts.succeeded == len(every)

    # Drift in the tenant: one configuration changed, one compliance policy
    # deleted, one settings-catalog policy's settings changed.
    changed, gone, retuned = (
        ids["deviceConfigurations"][0],
        ids["deviceCompliancePolicies"][1],
        ids["configurationPolicies"][2],
    )
    state = graph.state
    state.get_object(entra, "deviceConfigurations", changed)  # exists
    with state._lock:
        state.tenants[entra].objects["deviceConfigurations"][changed]["passwordMinimumLength"] = 4
        settings = state.tenants[entra].objects["configurationPolicies"][retuned]["settings"]
        settings[0]["settingInstance"]["choiceSettingValue"]["value"] = "drifted"
    assert state.delete_object(entra, "deviceCompliancePolicies", gone)

    preview = wait_terminal(stub, start(stub, name, "restore_preview", target="bs-graph").run)
    assert preview.status == runs_pb2.RUN_STATUS_SUCCEEDED
    actions = {
        policy_id: (action, keys)
        for policy_id, action, keys in query_all(
            stack.database_url,
            "SELECT policy_id, action, changed_keys FROM restore_previews WHERE run_id = %s",
            preview.id,
        )
    }
    assert actions[changed] == ("update", ["passwordMinimumLength"])
    assert actions[retuned] == ("update", ["settings"])
    assert actions[gone][0] == "create"
    assert {a for p, (a, _) in actions.items() if p not in (changed, retuned, gone)} == {
        "unchanged"
    }

    refused = ids["deviceConfigurations"][1]
    with state._lock:
        state.tenants[entra].objects["deviceConfigurations"][refused]["description"] = "drifted"
    state.reject_writes(entra, refused)
    restored = wait_terminal(stub, start(stub, name, "restore_execute", target="bs-graph").run)
    assert restored.status == runs_pb2.RUN_STATUS_PARTIAL
    assert (restored.counts.succeeded, restored.counts.failed) == (len(every) - 1, 1), (
        MessageToDict(restored.safe_error),
        [i for i in run_items(stack.database_url, restored.id) if i[1] == "failed"],
    )
    error = MessageToDict(restored.safe_error)
    assert error["code"] == "ITEMS_FAILED"
    assert error["context"]["errorCodes"] == {"GRAPH_INVALID_OBJECT": 1.0}
    # Graph's own words (its message names the tenant and a correlation id) stay out.
    assert entra not in json.dumps(error) and "correlation" not in json.dumps(error)

    # The restore is visible in Graph: the drifts are undone, the deleted
    # compliance policy exists again (a new object, with its scheduled actions).
    assert (
        state.get_object(entra, "deviceConfigurations", changed)["passwordMinimumLength"]
        == (snapshots[changed]["passwordMinimumLength"])
    )
    value = state.get_object(entra, "configurationPolicies", retuned)["settings"][0]
    assert value["settingInstance"]["choiceSettingValue"]["value"] != "drifted"
    recreated = [
        p
        for p in state.objects(entra, "deviceCompliancePolicies")
        if p["displayName"] == snapshots[gone]["displayName"]
    ]
    assert len(recreated) == 1 and recreated[0]["id"] != gone
    assert recreated[0]["scheduledActionsForRule"][0]["scheduledActionConfigurations"]
    assert state.get_object(entra, "deviceConfigurations", refused)["description"] == "drifted"

    # Restoring again changes nothing more, and creates nothing twice.
    again = wait_terminal(stub, start(stub, name, "restore_preview", target="bs-graph").run)
    unchanged = query_all(
        stack.database_url,
        "SELECT policy_id FROM restore_previews WHERE run_id = %s AND action <> 'unchanged'",
        again.id,
    )
    assert unchanged == [(refused,)]


def test_a_429_storm_pauses_the_tenant_in_every_worker_and_fails_nothing(graph, graph_stack):
    stack = graph_stack
    # Two worker processes of one thread that take one message at a time:
    # the tenant's two runs go one to each.
    stack.start_worker(processes=2, threads=1, dramatiq_queue_prefetch="1")
    stub = stack.stub()
    graph.state.configure(latency=0.02, omit_retry_after_ratio=0.2)
    name, entra, ids = graph_tenant(graph, stack.database_url, each=60)
    every = [i for collection in ids.values() for i in collection]
    first = start(stub, name, "snapshot_capture", target="a").run
    wait_until(lambda: graph.state.call_log(entra), timeout=60)
    second = start(stub, name, "backup_set_add_policies", target="bs-graph", item_ids=every).run

    def agents() -> set[str]:
        return {c.agent for c in graph.state.call_log(entra) if c.status == 200}

    wait_until(lambda: len(agents()) == 2, timeout=60)
    graph.state.throttle(entra, 4)  # every call of the tenant: 429 for four seconds
    runs = [wait_terminal(stub, run, timeout=180) for run in (first, second)]
    for run in runs:
        assert run.status == runs_pb2.RUN_STATUS_SUCCEEDED, MessageToDict(run)
        assert run.counts.succeeded == run.counts.total == len(every) and run.counts.failed == 0
    calls = graph.state.call_log(entra)
    throttled = [c for c in calls if c.status == 429]
    assert throttled, "the storm never hit"
    assert len({c.agent for c in throttled}) >= 1 and len(agents()) == 2
    # Once the first 429 was seen, no call of either process went out until
    # the pause (Retry-After) had passed, but for calls already on the wire.
    first_hit = throttled[0].at
    quiet = [c for c in calls if first_hit + 0.5 < c.at < first_hit + 3.5]
    assert quiet == [], quiet[:5]
    # Pacing keeps Graph's answer clean otherwise: the 429s are the storm's.
    assert len(throttled) <= 2 * 20 * 2


def test_an_access_token_that_dies_mid_run_is_replaced(graph, graph_stack):
    stack = graph_stack
    stack.start_worker(threads=1)
    stub = stack.stub()
    graph.state.configure(latency=0.1)
    name, entra, _ = graph_tenant(graph, stack.database_url, each=100)
    run = start(stub, name, "snapshot_capture").run
    wait_until(lambda: len(graph.state.call_log(entra)) >= 20, timeout=60)
    assert graph.state.expire_tokens() >= 1
    finished = wait_terminal(stub, run, timeout=120)
    assert finished.status == runs_pb2.RUN_STATUS_SUCCEEDED
    assert finished.counts.succeeded == 3 * 100
    assert graph.state.tokens_issued[entra] >= 2
    assert 401 in {c.status for c in graph.state.call_log(entra)}


def test_sign_in_failures_fail_the_run_with_safe_codes_and_no_secret_leaks(graph, graph_stack):
    stack = graph_stack
    worker = stack.start_worker(threads=2)
    stub = stack.stub()
    name, entra, ids = graph_tenant(graph, stack.database_url, each=2)
    graph.state.reject_writes(entra, ids["deviceConfigurations"][0])
    unconsented, _, _ = graph_tenant(graph, stack.database_url, each=1, consent=False)
    unmapped = f"nomap-{uuid.uuid4().hex[:8]}"
    seed(stack.database_url, {"tenants": [{"externalId": unmapped}]})

    ok = wait_terminal(stub, start(stub, name, "snapshot_capture").run)
    assert ok.status == runs_pb2.RUN_STATUS_SUCCEEDED
    no_consent = wait_terminal(stub, start(stub, unconsented, "snapshot_capture").run)
    assert no_consent.status == runs_pb2.RUN_STATUS_FAILED
    assert no_consent.safe_error.code == "GRAPH_CONSENT_MISSING"
    no_map = wait_terminal(stub, start(stub, unmapped, "snapshot_capture").run)
    assert no_map.safe_error.code == "GRAPH_TENANT_NOT_SET"
    graph.state.expire_tokens()
    added = wait_terminal(
        stub,
        start(stub, name, "backup_set_add_policies", target="bs-graph",
              item_ids=ids["deviceConfigurations"]).run,
    )  # fmt: skip
    assert added.status == runs_pb2.RUN_STATUS_SUCCEEDED
    restored = wait_terminal(stub, start(stub, name, "restore_execute", target="bs-graph").run)
    assert restored.counts.failed == 0  # nothing drifted: nothing was written

    log = worker.output()
    assert "GRAPH_CONSENT_MISSING" in log or "sign-in refused" in log
    assert graph.secret not in log
    issued = list(graph.state._tokens)
    assert issued and not [t for t in issued if t in log]
    assert not re.search(r"AADSTS\d+:", log)  # Entra's descriptions stay out too
    for run in (no_consent, no_map, restored):
        text = json.dumps(MessageToDict(run))
        assert graph.secret not in text and "AADSTS" not in text
    (items,) = query_one(
        stack.database_url,
        "SELECT count(*) FROM run_items WHERE run_id = %s AND error_code IS NOT NULL",
        no_consent.id,
    )
    assert items == 0  # the run failed before any item: listing was refused
