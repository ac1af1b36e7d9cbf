"""Certificate checks shared by every signer: expiry (an error), near expiry (a warning), thumbprints.

The certificate of the signing key is what the vendor trusts (Box, Salesforce, Entra and
ServiceNow all register a certificate or its public key). An expired one is refused by most
servers with a terse ``invalid_grant``, so the provider refuses it first, by name; one close to
expiry is a warning in the task log, early enough to rotate the key.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from airflow_jwt_provider.exceptions import KeystoreError

#: A certificate that expires within this window is warned about.
CERTIFICATE_WARNING_WINDOW = timedelta(days=30)


def certificate_thumbprint(certificate: x509.Certificate | None, algorithm: hashes.HashAlgorithm) -> str:
    """Base64url certificate thumbprint, for the ``x5t`` (SHA-1) and ``x5t#S256`` headers."""
    if certificate is None:
        raise KeystoreError(
            "x5t needs the certificate of the signing key, and the key material has none; "
            "use a keystore entry with its certificate or append the certificate to the PEM",
            field="x5t",
        )
    digest = certificate.fingerprint(algorithm)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _describe_certificate(certificate: x509.Certificate, alias: str | None) -> str:
    return f"The certificate of the signing key ({certificate.subject.rfc4514_string()}, alias {alias!r})"


def check_certificate(certificate: x509.Certificate | None, alias: str | None, now: datetime | None = None) -> None:
    """Raise :class:`KeystoreError` when the certificate has expired: servers refuse such keys."""
    if certificate is None:
        return
    not_after = certificate.not_valid_after_utc
    if not_after <= (now or datetime.now(timezone.utc)):
        raise KeystoreError(
            f"{_describe_certificate(certificate, alias)} expired on {not_after:%Y-%m-%d %H:%M} UTC; create a new "
            "key pair, register its certificate with the authorization server and update the connection's keystore",
            field="key_file",
        )


def certificate_warning(
    certificate: x509.Certificate | None, alias: str | None, now: datetime | None = None
) -> str | None:
    """A warning when the certificate expires within :data:`CERTIFICATE_WARNING_WINDOW`, else ``None``."""
    if certificate is None:
        return None
    not_after = certificate.not_valid_after_utc
    left = not_after - (now or datetime.now(timezone.utc))
    if timedelta(0) < left <= CERTIFICATE_WARNING_WINDOW:
        return (
            f"{_describe_certificate(certificate, alias)} expires on {not_after:%Y-%m-%d} UTC, in {left.days} "
            "day(s); renew it and register the new one with the authorization server"
        )
    return None
