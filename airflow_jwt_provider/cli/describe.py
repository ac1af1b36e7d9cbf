"""What the commands print about keys, certificates and tokens: text lines, PEM, JWKs, decoded JWTs.

Nothing here prints a secret: keys are shown by their public half, certificates by their
public fields, JWTs only decoded (header and claims, never the signature or the compact form).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_jwt_provider.signing.certificates import CertificateState, certificate_status, certificate_thumbprint
from airflow_jwt_provider.signing.jws import (
    SigningPublicKey,
    allowed_algorithms,
    describe_public_key,
    public_key_fingerprint,
)

#: The members RFC 7638 hashes, per key type, in the order it requires (lexicographic).
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


def key_lines(public_key: SigningPublicKey) -> list[str]:
    """``key: RSA-2048 (can sign RS256, RS384, ...)`` and the public key's SHA-256 fingerprint."""
    return [
        f"key: {describe_public_key(public_key)} (can sign {', '.join(allowed_algorithms(public_key))})",
        f"public key SHA-256: {public_key_fingerprint(public_key)}",
    ]


def certificate_lines(certificate: x509.Certificate | None, now: datetime | None = None) -> list[str]:
    """Subject, issuer, validity (with what is left of it) and the x5t thumbprints of ``certificate``."""
    if certificate is None:
        return ["certificate: none (x5t headers cannot be sent; servers that want a certificate need one)"]
    status = certificate_status(certificate, now)
    left = {
        CertificateState.EXPIRED: "EXPIRED",
        CertificateState.EXPIRING: f"expires soon: {status.days_left} day(s) left",
        CertificateState.VALID: f"{status.days_left} day(s) left",
    }[status.state]
    return [
        f"certificate subject: {certificate.subject.rfc4514_string() or '(empty)'}",
        f"certificate issuer: {certificate.issuer.rfc4514_string() or '(empty)'}",
        f"certificate validity: {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC to "
        f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({left})",
        f"x5t: {certificate_thumbprint(certificate, hashes.SHA1())}",
        f"x5t#S256: {certificate_thumbprint(certificate, hashes.SHA256())}",
    ]


def public_key_pem(public_key: SigningPublicKey) -> str:
    """The SubjectPublicKeyInfo PEM (``BEGIN PUBLIC KEY``), what Box and DocuSign take."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def certificate_pem(certificate: x509.Certificate) -> str:
    """The certificate in PEM, what Salesforce, Entra and ServiceNow take."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _b64url_uint(value: int, size: int | None = None) -> str:
    data = value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(
    public_key: SigningPublicKey,
    *,
    algorithm: str,
    kid: str | None = None,
    certificate: x509.Certificate | None = None,
) -> dict[str, Any]:
    """The public JWK (RFC 7517/7518) of ``public_key``, with ``use``, ``alg``, ``kid`` and certificate members.

    Without a configured ``kid`` the key's RFC 7638 thumbprint stands in, so a JWK set always
    says which key is which. ``x5c`` holds the certificate (standard base64 DER, RFC 7517 §4.7);
    ``x5t#S256`` and ``x5t`` its thumbprints.
    """
    jwk: dict[str, Any]
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        jwk = {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        size = (public_key.curve.key_size + 7) // 8
        point = public_key.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[public_key.curve.name]
        jwk = {"kty": "EC", "crv": crv, "x": _b64url_uint(point.x, size), "y": _b64url_uint(point.y, size)}
    else:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")}
    jwk.update(use="sig", alg=algorithm, kid=kid or jwk_thumbprint(jwk))
    if certificate is not None:
        der = certificate.public_bytes(serialization.Encoding.DER)
        jwk["x5c"] = [base64.b64encode(der).decode("ascii")]
        jwk["x5t#S256"] = certificate_thumbprint(certificate, hashes.SHA256())
        jwk["x5t"] = certificate_thumbprint(certificate, hashes.SHA1())
    return jwk


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a public JWK."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode("ascii")


def decode_jwt(compact: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, for display (the signature is not checked: we just made it)."""
    parts = compact.split(".")

    def part(index: int) -> dict[str, Any]:
        text = parts[index] + "=" * (-len(parts[index]) % 4)
        value = json.loads(base64.urlsafe_b64decode(text))
        return value if isinstance(value, dict) else {}

    return part(0), part(1)


def claim_lines(claims: dict[str, Any]) -> list[str]:
    """One line per claim; ``iat``/``exp``/``nbf`` also as UTC times."""
    lines = []
    for name, value in claims.items():
        shown = json.dumps(value, ensure_ascii=False)
        if name in ("iat", "exp", "nbf") and isinstance(value, int):
            shown += f" ({datetime.fromtimestamp(value, timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"
        lines.append(f"{name}: {shown}")
    return lines
