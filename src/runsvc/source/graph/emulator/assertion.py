"""Checks a certificate credential: the client assertion (a JWT signed with
the certificate's key) that Microsoft Entra accepts instead of a secret."""

from __future__ import annotations

import base64
import hashlib

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion_error(
    form: dict[str, str], certificate_pem: bytes | None, audience: str
) -> str | None:
    """Why the assertion in `form` is not valid for this app, or None."""
    if certificate_pem is None:
        return "The application has no certificate credential."
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        return "Unsupported client assertion type."
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    der = certificate.public_bytes(Encoding.DER)
    thumbprints = {_b64url(hashlib.sha1(der).digest()), _b64url(hashlib.sha256(der).digest())}
    assertion = form["client_assertion"]
    try:
        header = jwt.get_unverified_header(assertion)
        # Either base64 alphabet, padded or not (MSAL sends standard, padded).
        sent = {
            str(v).rstrip("=").replace("+", "-").replace("/", "_")
            for v in (header.get("x5t"), header.get("x5t#S256"))
            if v
        }
        if not sent & thumbprints:
            return "The certificate with this thumbprint is not registered for the app."
        claims = jwt.decode(
            assertion,
            certificate.public_key(),
            algorithms=["RS256", "PS256"],
            audience=audience,
            options={"require": ["exp", "iss", "sub", "aud", "jti"]},
        )
    except jwt.PyJWTError as exc:
        return f"Client assertion failed signature validation ({type(exc).__name__})."
    if claims["iss"] != form.get("client_id") or claims["sub"] != form.get("client_id"):
        return "The client assertion names another application."
    return None
