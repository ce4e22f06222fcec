"""Certificates for TLS tests, made with the openssl command line: a CA,
a server certificate (localhost, 127.0.0.1), a client certificate, and a
second, untrusted CA with a client certificate of its own."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_client_cert: Path
    rogue_client_key: Path

    def client_credentials(
        self, *, with_cert: bool = True, rogue: bool = False
    ) -> grpc.ChannelCredentials:
        """Trusts the CA; presents the (rogue) client certificate if asked."""
        if not with_cert:
            return grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes())
        cert, key = (
            (self.rogue_client_cert, self.rogue_client_key)
            if rogue
            else (self.client_cert, self.client_key)
        )
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=key.read_bytes(),
            certificate_chain=cert.read_bytes(),
        )


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _key_and_csr(directory: Path, name: str, subject: str) -> None:
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
        cwd=directory,
    )  # fmt: skip


def _ca(directory: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip


def _sign(directory: Path, name: str, ca: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def make_pki(directory: Path) -> Pki:
    assert shutil.which("openssl"), "the openssl command is needed to make test certificates"
    _ca(directory, "ca")
    _ca(directory, "rogue-ca")
    _key_and_csr(directory, "server", "/CN=localhost")
    _sign(
        directory,
        "server",
        "ca",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    for name, ca in (("client", "ca"), ("rogue-client", "rogue-ca")):
        _key_and_csr(directory, name, f"/CN={name}")
        _sign(directory, name, ca, "extendedKeyUsage=clientAuth\n")
    return Pki(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        rogue_client_cert=directory / "rogue-client.pem",
        rogue_client_key=directory / "rogue-client.key",
    )
