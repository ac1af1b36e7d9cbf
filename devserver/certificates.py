"""A throw-away certificate authority for keys whose private half the tests cannot touch.

A key inside an HSM or a cloud KMS cannot sign its own certificate with ``cryptography``; in
real deployments a CA issues one for the exported public key (from a CSR the device signed).
The tests do the same with a CA key made for the run: :meth:`TestCa.issue` certifies any
public key. Nothing is committed; certificates live for two days.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["TestCa"]

_VALIDITY = datetime.timedelta(days=2)
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class TestCa:
    """A CA key (EC P-256, in memory) and its self-signed certificate."""

    __test__ = False  # not a pytest test class, whatever its name

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str = "devserver test CA") -> TestCa:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, certificate=certificate)

    def issue(self, public_key: Any, common_name: str) -> x509.Certificate:
        """An end-entity certificate for ``public_key`` (whose private half may be anywhere)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
