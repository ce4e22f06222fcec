"""The Graph emulator behaves as Microsoft documents the parts runsvc uses:
client-credentials sign-in (secret and certificate) through MSAL, paging,
beta-only settings catalog with $expand, compliance policies created with
their scheduled actions, JSON $batch of 20 throttled per request."""

from __future__ import annotations

import uuid

import httpx
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from runsvc.source.graph.auth import MsalHttp
from runsvc.source.graph.client import ssl_context
from runsvc.source.graph.emulator.tls import make_app_certificate
from tests.support.graph import CLIENT_ID, compliance_policy, device_configuration, fill


def msal_app(graph, tenant_id: str, credential, http: httpx.Client):
    return msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=credential,
        authority=f"{graph.emulator.url}/{tenant_id}",
        instance_discovery=False,
        http_client=MsalHttp(http),
    )


@pytest.fixture
def http(graph):
    with httpx.Client(verify=ssl_context(str(graph.emulator.ca_file)), timeout=10) as client:
        yield client


def token(graph, tenant_id: str, http: httpx.Client) -> str:
    result = msal_app(graph, tenant_id, graph.secret, http).acquire_token_for_client(
        [f"{graph.emulator.url}/.default"]
    )
    return result["access_token"]


def test_sign_in_with_a_secret_and_its_refusals(graph, http):
    tenant_id = graph.tenant()
    scope = [f"{graph.emulator.url}/.default"]
    ok = msal_app(graph, tenant_id, graph.secret, http).acquire_token_for_client(scope)
    assert ok["token_type"] == "Bearer" and ok["expires_in"] > 300
    wrong = msal_app(graph, tenant_id, "not-the-secret", http).acquire_token_for_client(scope)
    assert wrong["error"] == "invalid_client"
    unconsented = str(uuid.uuid4())
    graph.state.add_tenant(unconsented)  # the app was never consented to there
    refused = msal_app(graph, unconsented, graph.secret, http).acquire_token_for_client(scope)
    assert refused["error"] == "unauthorized_client"
    assert graph.state.tokens_issued[tenant_id] == 1


def test_sign_in_with_a_certificate(graph, http):
    key_pem, cert_pem = make_app_certificate(CLIENT_ID)
    graph.state.add_app(CLIENT_ID, certificate_pem=cert_pem)
    tenant_id = graph.tenant()
    thumbprint = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA1()).hex()
    credential = {"private_key": key_pem.decode(), "thumbprint": thumbprint}
    result = msal_app(graph, tenant_id, credential, http).acquire_token_for_client(
        [f"{graph.emulator.url}/.default"]
    )
    assert "access_token" in result, result
    other_key, _ = make_app_certificate(CLIENT_ID)
    forged = msal_app(
        graph, tenant_id, {"private_key": other_key.decode(), "thumbprint": thumbprint}, http
    ).acquire_token_for_client([f"{graph.emulator.url}/.default"])
    assert forged["error"] == "invalid_client"


def test_paging_follows_next_links_to_every_object(graph, http):
    tenant_id = graph.tenant()
    made = [
        graph.state.put_object(tenant_id, "deviceConfigurations", device_configuration(i))["id"]
        for i in range(250)
    ]
    graph.state.configure(page_size=100)
    headers = {"Authorization": f"Bearer {token(graph, tenant_id, http)}"}
    url = f"{graph.emulator.url}/v1.0/deviceManagement/deviceConfigurations?$select=id"
    seen, pages = [], 0
    while url:
        body = http.get(url, headers=headers).json()
        seen += [o["id"] for o in body["value"]]
        assert all(set(o) <= {"id", "@odata.type"} for o in body["value"])
        url = body.get("@odata.nextLink")
        pages += 1
    assert seen == made and pages == 3


def test_settings_catalog_is_beta_only_and_settings_come_with_expand(graph, http):
    tenant_id = graph.tenant()
    fill(graph.state, tenant_id, each=1)
    headers = {"Authorization": f"Bearer {token(graph, tenant_id, http)}"}
    base = graph.emulator.url
    assert (
        http.get(f"{base}/v1.0/deviceManagement/configurationPolicies", headers=headers).status_code
        == 400
    )
    plain = http.get(f"{base}/beta/deviceManagement/configurationPolicies", headers=headers).json()
    assert "settings" not in plain["value"][0] and "name" in plain["value"][0]
    expanded = http.get(
        f"{base}/beta/deviceManagement/configurationPolicies?$expand=settings", headers=headers
    ).json()
    assert expanded["value"][0]["settings"][0]["settingInstance"]["settingDefinitionId"]


def test_compliance_policies_are_created_with_scheduled_actions_and_read_only_is_refused(
    graph, http
):
    tenant_id = graph.tenant()
    headers = {"Authorization": f"Bearer {token(graph, tenant_id, http)}"}
    url = f"{graph.emulator.url}/v1.0/deviceManagement/deviceCompliancePolicies"
    bare = {k: v for k, v in compliance_policy(1).items() if k != "scheduledActionsForRule"}
    assert http.post(url, json=bare, headers=headers).status_code == 400
    created = http.post(url, json=compliance_policy(1), headers=headers)
    assert created.status_code == 201
    policy_id = created.json()["id"]
    item = f"{url}/{policy_id}"
    assert "scheduledActionsForRule" not in http.get(item, headers=headers).json()
    expand = "?$expand=scheduledActionsForRule($expand=scheduledActionConfigurations)"
    whole = http.get(item + expand, headers=headers).json()
    assert (
        whole["scheduledActionsForRule"][0]["scheduledActionConfigurations"][0]["actionType"]
        == "block"
    )
    refused = http.patch(item, json={"displayName": "x", "version": 3}, headers=headers)
    assert (
        refused.status_code == 400 and refused.json()["error"]["code"] == "ModelValidationFailure"
    )
    assert http.patch(item, json={"displayName": "renamed"}, headers=headers).status_code == 204
    assert (
        graph.state.get_object(tenant_id, "deviceCompliancePolicies", policy_id)["displayName"]
        == "renamed"
    )


def test_batch_carries_twenty_and_throttles_each_request_on_its_own(graph, http):
    tenant_id = graph.tenant()
    ids = [
        graph.state.put_object(tenant_id, "deviceConfigurations", device_configuration(i))["id"]
        for i in range(21)
    ]
    headers = {"Authorization": f"Bearer {token(graph, tenant_id, http)}"}
    url = f"{graph.emulator.url}/v1.0/$batch"

    def batch(n: int) -> httpx.Response:
        requests = [
            {"id": str(i), "method": "GET", "url": f"/deviceManagement/deviceConfigurations/{x}"}
            for i, x in enumerate(ids[:n])
        ]
        return http.post(url, json={"requests": requests}, headers=headers)

    assert batch(21).status_code == 400
    graph.state.configure(app_requests=5)
    answer = batch(8)
    assert answer.status_code == 200
    statuses = sorted(r["status"] for r in answer.json()["responses"])
    assert statuses == [200] * 5 + [429] * 3
    throttled = [r for r in answer.json()["responses"] if r["status"] == 429]
    assert all(int(r["headers"]["Retry-After"]) >= 1 for r in throttled)
