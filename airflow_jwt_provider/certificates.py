"""Certificate checks shared by every signer: expiry (an error), near expiry (a warning), thumbprints.

The certificate of the signing key is what the vendor trusts (Box, Salesforce, Entra and
ServiceNow all register a certificate or its public key). An expired one is refused by most
servers with a terse ``invalid_grant``, so the provider refuses it first, by name; one close to
expiry is a warning in the task log, early enough to rotate the key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
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
            "use a keystore entry with its certificate or append the certificate to the PEM "
            "(with signer pkcs11 or aws_kms: set certificate_file)",
            field="x5t",
        )
    digest = certificate.fingerprint(algorithm)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class CertificateStatus:
    """Where a key's certificate stands now: what key rotation decides on and ``check`` reports.

    ``state`` is ``"none"`` (the key has no certificate: nothing to expire), ``"valid"``,
    ``"expiring"`` (valid, but within :data:`CERTIFICATE_WARNING_WINDOW`) or ``"expired"``.
    """

    state: str
    not_after: datetime | None = None
    days_left: int | None = None

    @property
    def usable(self) -> bool:
        """Whether the key may sign at all (an expired certificate is refused by servers)."""
        return self.state != "expired"

    def describe(self) -> str:
        """``valid until 2027-01-31 (400 days left)``, ``expired on 2026-01-31``..."""
        if self.not_after is None:
            return "no certificate"
        if self.state == "expired":
            return f"expired on {self.not_after:%Y-%m-%d %H:%M} UTC"
        return f"valid until {self.not_after:%Y-%m-%d} UTC ({self.days_left} day(s) left)"


def certificate_status(certificate: x509.Certificate | None, now: datetime | None = None) -> CertificateStatus:
    """The :class:`CertificateStatus` of ``certificate`` at ``now`` (default: the current time)."""
    if certificate is None:
        return CertificateStatus("none")
    not_after = certificate.not_valid_after_utc
    left = not_after - (now or datetime.now(timezone.utc))
    if left <= timedelta(0):
        return CertificateStatus("expired", not_after, left.days)
    state = "expiring" if left <= CERTIFICATE_WARNING_WINDOW else "valid"
    return CertificateStatus(state, not_after, left.days)


def _describe_certificate(certificate: x509.Certificate, alias: str | None) -> str:
    key = f"key {alias!r}" if alias else "the signing key"
    return f"the certificate of {key} ({certificate.subject.rfc4514_string()})"


def _sentence(text: str, conn_id: str | None) -> str:
    return f"Connection {conn_id!r}: {text}" if conn_id else text[:1].upper() + text[1:]


def check_certificate(
    certificate: x509.Certificate | None,
    alias: str | None,
    now: datetime | None = None,
    *,
    conn_id: str | None = None,
    field: str = "key_file",
) -> None:
    """Raise :class:`KeystoreError` when the certificate has expired: servers refuse such keys.

    :param alias: how the key is named in the connection (keystore alias, PKCS#11 label, KMS key).
    :param field: the setting that selects the key, for the error's ``field``.
    """
    status = certificate_status(certificate, now)
    if certificate is None or status.usable:
        return
    raise KeystoreError(
        _sentence(
            f"{_describe_certificate(certificate, alias)} {status.describe()}; create a new key pair, register "
            "its certificate with the authorization server and update the connection's key",
            conn_id,
        ),
        field=field,
    )


def certificate_warning(
    certificate: x509.Certificate | None,
    alias: str | None,
    now: datetime | None = None,
    *,
    conn_id: str | None = None,
) -> str | None:
    """A warning naming the connection, the key and the days left when the certificate expires within
    :data:`CERTIFICATE_WARNING_WINDOW`, else ``None``."""
    status = certificate_status(certificate, now)
    if certificate is None or status.state != "expiring":
        return None
    return _sentence(
        f"{_describe_certificate(certificate, alias)} expires on {status.not_after:%Y-%m-%d} UTC, in "
        f"{status.days_left} day(s); renew it and register the new one with the authorization server "
        "(list the new key first in key_alias to rotate without downtime)",
        conn_id,
    )
