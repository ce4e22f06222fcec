"""Certificates for the TLS tests (a CA, server and client certificates, and
a rogue CA), made once per module, and the server settings that use them."""

from __future__ import annotations

import pytest

from tests.support.tls import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_env(pki: Pki, *, mutual: bool) -> dict[str, str]:
    env = {"RUNSVC_TLS_CERT": str(pki.server_cert), "RUNSVC_TLS_KEY": str(pki.server_key)}
    if mutual:
        env["RUNSVC_TLS_CLIENT_CA"] = str(pki.ca)
    return env
