"""A Graph emulator with runsvc's app registered, and the settings and
environment that point the Graph client (or a worker) at it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runsvc.source.graph.emulator import EmulatorState, GraphEmulator
from runsvc.source.graph.settings import Budget, GraphSettings

CLIENT_ID = "6e8b4f2c-1d3a-4b5e-9f70-0a1b2c3d4e5f"


@dataclass
class Graph:
    """The running emulator, runsvc's app, and tenants made in it."""

    emulator: GraphEmulator
    secret: str
    secret_file: Path

    @property
    def state(self) -> EmulatorState:
        return self.emulator.state

    def settings(self, budget: Budget | None = None, **changes: Any) -> GraphSettings:
        fields: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": self.secret,
            "graph_url": self.emulator.url,
            "login_url": self.emulator.url,
            "ca_file": str(self.emulator.ca_file),
            "budget": budget or Budget(),
        }
        return GraphSettings(**{**fields, **changes})

    def env(self, **overrides: str) -> dict[str, str]:
        """What a worker needs to use the Graph source against the emulator."""
        return {
            "RUNSVC_TENANT_SOURCE": "runsvc.source.graph:create",
            "RUNSVC_GRAPH_CLIENT_ID": CLIENT_ID,
            "RUNSVC_GRAPH_CLIENT_SECRET_FILE": str(self.secret_file),
            "RUNSVC_GRAPH_URL": self.emulator.url,
            "RUNSVC_GRAPH_LOGIN_URL": self.emulator.url,
            "RUNSVC_GRAPH_CA_FILE": str(self.emulator.ca_file),
            **overrides,
        }

    def tenant(self, **consent: Any) -> str:
        """A new customer tenant where runsvc's app has admin consent."""
        tenant_id = str(uuid.uuid4())
        self.state.add_tenant(tenant_id, consent=[CLIENT_ID], **consent)
        return tenant_id


def device_configuration(index: int) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
        "displayName": f"Windows baseline {index}",
        "description": "Corporate baseline",
        "passwordRequired": index % 2 == 0,
        "passwordMinimumLength": 8 + index % 6,
    }


def compliance_policy(index: int) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.windows10CompliancePolicy",
        "displayName": f"Windows compliance {index}",
        "osMinimumVersion": "10.0.22621",
        "bitLockerEnabled": True,
        "scheduledActionsForRule": [
            {
                "ruleName": "PasswordRequired",
                "scheduledActionConfigurations": [
                    {"actionType": "block", "gracePeriodHours": 12 + index,
                     "notificationTemplateId": "", "notificationMessageCCList": []}
                ],
            }
        ],
    }  # fmt: skip


CHOICE_SETTING = "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance"


def settings_catalog_policy(index: int) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.deviceManagementConfigurationPolicy",
        "name": f"Edge settings {index}",
        "description": "Settings catalog",
        "platforms": "windows10",
        "technologies": "mdm",
        "settings": [
            {
                "@odata.type": "#microsoft.graph.deviceManagementConfigurationSetting",
                "settingInstance": {
                    "@odata.type": CHOICE_SETTING,
                    "settingDefinitionId": "device_vendor_msft_policy_config_edge_homepage",
                    "choiceSettingValue": {"value": f"choice_{index % 3}", "children": []},
                },
            }
        ],
    }


def fill(state: EmulatorState, tenant_id: str, *, each: int) -> dict[str, list[str]]:
    """`each` objects in every collection; their ids per collection."""
    makers = {
        "deviceConfigurations": device_configuration,
        "deviceCompliancePolicies": compliance_policy,
        "configurationPolicies": settings_catalog_policy,
    }
    return {
        name: [state.put_object(tenant_id, name, make(i))["id"] for i in range(each)]
        for name, make in makers.items()
    }


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[Graph]:
    state = EmulatorState(seed=7)
    secret = f"secret-{uuid.uuid4().hex}"
    state.add_app(CLIENT_ID, secret=secret)
    secret_file = tmp_path / "graph-secret"
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    with GraphEmulator(state, directory=tmp_path / "graph-tls") as emulator:
        yield Graph(emulator, secret, secret_file)
