"""Certificate checks shared by every signer: expiry (an error), near expiry (a warning), thumbprints.

The certificate of the signing key is what the vendor trusts (Box, Salesforce, Entra and
ServiceNow all register a certificate or its public key). An expired one is refused by most
servers with a terse ``invalid_grant``, so the provider refuses it first, by name; one close to
expiry is a warning in the task log, early enough to rotate the key.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from airflow_jwt_provider.exceptions import KeystoreError
from airflow_jwt_provider.signing.jws import (
    SigningPublicKey,
    describe_public_key,
    public_key_fingerprint,
    same_public_key,
)

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


class CertificateState(Enum):
    """Where a key's certificate stands: what key rotation decides on."""

    #: The key has no certificate: nothing says when it stops being trusted, so it counts as valid.
    NONE = "none"
    VALID = "valid"
    #: Valid, but within :data:`CERTIFICATE_WARNING_WINDOW`: signs, with a warning.
    EXPIRING = "expiring"
    #: Servers refuse such keys: the key does not sign.
    EXPIRED = "expired"

    @property
    def usable(self) -> bool:
        """Whether a key in this state may sign at all."""
        return self is not CertificateState.EXPIRED

    @property
    def preferred(self) -> bool:
        """Whether a key in this state signs without a warning (rotation prefers such a key)."""
        return self in (CertificateState.NONE, CertificateState.VALID)


@dataclass(frozen=True)
class CertificateStatus:
    """Where a key's certificate stands now: what key rotation decides on and ``check`` reports."""

    state: CertificateState
    not_after: datetime | None = None
    days_left: int | None = None

    @property
    def usable(self) -> bool:
        """Whether the key may sign at all (an expired certificate is refused by servers)."""
        return self.state.usable

    def describe(self) -> str:
        """``valid until 2027-01-31 (400 days left)``, ``expired on 2026-01-31``..."""
        if self.not_after is None:
            return "no certificate"
        if self.state is CertificateState.EXPIRED:
            return f"expired on {self.not_after:%Y-%m-%d %H:%M} UTC"
        return f"valid until {self.not_after:%Y-%m-%d} UTC ({self.days_left} day(s) left)"


def certificate_status(certificate: x509.Certificate | None, now: datetime | None = None) -> CertificateStatus:
    """The :class:`CertificateStatus` of ``certificate`` at ``now`` (default: the current time)."""
    if certificate is None:
        return CertificateStatus(CertificateState.NONE)
    not_after = certificate.not_valid_after_utc
    left = not_after - (now or datetime.now(timezone.utc))
    if left <= timedelta(0):
        return CertificateStatus(CertificateState.EXPIRED, not_after, left.days)
    state = CertificateState.EXPIRING if left <= CERTIFICATE_WARNING_WINDOW else CertificateState.VALID
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
    if certificate is None or status.state is not CertificateState.EXPIRING:
        return None
    return _sentence(
        f"{_describe_certificate(certificate, alias)} expires on {status.not_after:%Y-%m-%d} UTC, in "
        f"{status.days_left} day(s); renew it and register the new one with the authorization server "
        "(list the new key first in key_alias to rotate without downtime)",
        conn_id,
    )


def load_certificate_file(
    path: str | os.PathLike[str], public_key: SigningPublicKey, *, field: str = "certificate_file"
) -> x509.Certificate:
    """The certificate of ``public_key`` from a PEM (a chain is fine) or DER file.

    A signer whose key lives in a device may have no certificate next to it (a KMS never
    holds one; many HSM tokens hold only the key pair): the certificate the authorization
    server knows the client by is then configured as a file. It must be the key's own:
    a certificate for another key would send ``x5t`` headers that match nothing.
    """
    shown = str(path)
    try:
        data = Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise KeystoreError(
            f"{field} {shown!r} does not exist on this machine; the certificate file must be readable "
            "by the Airflow worker",
            field=field,
        ) from None
    except OSError as exc:
        raise KeystoreError(
            f"{field} {shown!r} cannot be read ({exc.strerror}); check its permissions", field=field
        ) from None
    certificates: list[x509.Certificate] = []
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            certificates = x509.load_pem_x509_certificates(data)
        else:
            certificates = [x509.load_der_x509_certificate(data)]
    except ValueError:
        certificates = []
    if not certificates:
        raise KeystoreError(
            f"{field} {shown!r} is not an X.509 certificate in PEM or DER form "
            "(a private key or a public key alone is not a certificate)",
            field=field,
        )
    for certificate in certificates:
        if same_public_key(certificate.public_key(), public_key):
            return certificate
    subjects = "; ".join(c.subject.rfc4514_string() or "(empty subject)" for c in certificates)
    raise KeystoreError(
        f"{field} {shown!r} holds no certificate for the signing key ({describe_public_key(public_key)}, "
        f"SHA-256 {public_key_fingerprint(public_key)[:16]}…); it has: {subjects}. "
        "Use the certificate issued for this key pair",
        field=field,
    )
