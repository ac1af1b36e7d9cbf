"""TLS for the devserver: a test CA made at run time, the HTTPS context, and mutual-TLS checks (RFC 8705).

* :class:`CertificateAuthority`: an EC P-256 CA in memory, which issues the server's certificate (for
  ``127.0.0.1``, ``::1`` and ``localhost`` as IP/DNS subject alternative names) and client certificates
  (:meth:`~CertificateAuthority.issue_client_certificate`) for ``tls_client_auth``. Its certificates
  carry Subject/Authority Key Identifier, KeyUsage and ExtendedKeyUsage: Python 3.13's default client
  context (``VERIFY_X509_STRICT``) refuses certificates without them.
* :func:`self_signed_certificate`: a client's own certificate for ``self_signed_tls_client_auth``.
* :func:`server_context`: the server side, which *requests* a client certificate (``CERT_OPTIONAL``: a
  client without one still connects) and verifies it against the CA plus every self-signed certificate
  a client registered (:meth:`~devserver.server.LocalAuthorizationServer.register_client` loads them).
  A certificate that verifies against neither fails the handshake: Python's ``ssl`` cannot accept an
  unknown certificate and leave the decision to the application.
* :func:`peer_certificate`: the verified client certificate of the request's connection (werkzeug puts
  it in the WSGI environ as ``SSL_CLIENT_CERT``).
* :class:`SubjectRule`: ``tls_client_auth``'s one expected subject DN or subject alternative name
  (RFC 8705 §2.1.2).

Nothing is committed; certificates live for two days.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import shutil
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "SUBJECT_KINDS",
    "CertificateAuthority",
    "SubjectRule",
    "certificate_pem",
    "describe",
    "peer_certificate",
    "private_key_pem",
    "self_signed_certificate",
    "server_context",
    "thumbprint",
]

_VALIDITY = datetime.timedelta(days=2)
_BACKDATE = datetime.timedelta(minutes=5)
#: ``tls_client_auth`` client metadata (RFC 8705 §2.1.2), without the prefix ``tls_client_auth_``.
SUBJECT_KINDS = ("subject_dn", "san_dns", "san_uri", "san_ip", "san_email")


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def private_key_pem(key: Any) -> str:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii")


def thumbprint(certificate: x509.Certificate | bytes) -> str:
    """``x5t#S256``: base64url (no padding) SHA-256 of the DER certificate (RFC 8705 §3.1)."""
    der = certificate if isinstance(certificate, bytes) else certificate.public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def _key_usage(*, signing: bool, key_encipherment: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _alternative_names(
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    uris: Iterable[str] = (),
    emails: Iterable[str] = (),
) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    names += [x509.UniformResourceIdentifier(uri) for uri in uris]
    names += [x509.RFC822Name(email) for email in emails]
    return names


def _end_entity(
    builder: x509.CertificateBuilder,
    public_key: Any,
    *,
    usage: x509.ObjectIdentifier,
    alternative_names: list[x509.GeneralName],
) -> x509.CertificateBuilder:
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signing=True, key_encipherment=isinstance(public_key, rsa.RSAPublicKey)), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    return builder


class CertificateAuthority:
    """The test CA (EC P-256, in memory) that issues the server's and the clients' certificates."""

    def __init__(self, name: str = "devserver TLS test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        public_key = self.key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signing=True, ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def __repr__(self) -> str:
        return f"CertificateAuthority({self.certificate.subject.rfc4514_string()!r})"

    @property
    def pem(self) -> str:
        return certificate_pem(self.certificate)

    def issue(
        self,
        public_key: Any,
        subject: x509.Name,
        *,
        usage: x509.ObjectIdentifier,
        alternative_names: list[x509.GeneralName],
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        builder = _end_entity(builder, public_key, usage=usage, alternative_names=alternative_names)
        return builder.sign(self.key, hashes.SHA256())

    def issue_server_certificate(self, dns_names: Iterable[str], ip_addresses: Iterable[str]) -> tuple[str, str]:
        """PEM certificate and key of the server (EC P-256)."""
        key = ec.generate_private_key(ec.SECP256R1())
        dns, ips = list(dns_names), list(ip_addresses)
        common_name = (dns or ips or ["devserver"])[0]
        certificate = self.issue(
            key.public_key(),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            alternative_names=_alternative_names(dns, ips),
        )
        return certificate_pem(certificate), private_key_pem(key)

    def issue_client_certificate(
        self,
        subject_cn: str,
        *,
        key: Any = None,
        organization: str | None = None,
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[str] = (),
        uris: Iterable[str] = (),
        emails: Iterable[str] = (),
    ) -> tuple[str, str]:
        """PEM certificate and PEM private key (PKCS#8, unencrypted) of a client; ``key``: its own (else EC P-256)."""
        key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]
        if organization:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        certificate = self.issue(
            key.public_key(),
            x509.Name(attributes),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            alternative_names=_alternative_names(dns_names, ip_addresses, uris, emails),
        )
        return certificate_pem(certificate), private_key_pem(key)

    def issued(self, certificate: x509.Certificate) -> bool:
        """Whether this CA signed ``certificate`` (a self-signed certificate in the trust store did not)."""
        try:
            certificate.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def self_signed_certificate(subject_cn: str, *, key: Any = None) -> tuple[str, str]:
    """A self-signed client certificate (``self_signed_tls_client_auth``): PEM certificate and PEM key."""
    key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
    )
    builder = _end_entity(builder, public_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH, alternative_names=[])
    return certificate_pem(builder.sign(key, hashes.SHA256())), private_key_pem(key)


def server_context(authority: CertificateAuthority, certificate: str, key: str) -> ssl.SSLContext:
    """TLS 1.2+ server context: the server's certificate, client certificates requested and checked against the CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    directory = tempfile.mkdtemp(prefix="devserver-tls-")  # mode 0700; the key exists on disk only here
    try:
        path = Path(directory, "server.pem")
        path.write_text(key + certificate, encoding="ascii")
        context.load_cert_chain(path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=authority.pem)
    return context


def peer_certificate(environ: Mapping[str, Any]) -> x509.Certificate | None:
    """The client certificate of the connection (verified by the handshake), or None."""
    pem = environ.get("SSL_CLIENT_CERT")
    if pem:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    connection = environ.get("werkzeug.socket")
    if isinstance(connection, ssl.SSLSocket):
        try:
            der = connection.getpeercert(binary_form=True)
        except ValueError:  # handshake not done
            return None
        if der:
            return x509.load_der_x509_certificate(der)
    return None


def describe(certificate: x509.Certificate) -> dict[str, str]:
    """What the records say of a client certificate: subject, issuer and ``x5t#S256``."""
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "x5t#S256": thumbprint(certificate),
    }


def _rdn_set(name: x509.Name) -> set[str]:
    return {rdn.rfc4514_string() for rdn in name.rdns}


@dataclass(frozen=True)
class SubjectRule:
    """``tls_client_auth``: the one subject value expected (RFC 8705 §2.1.2; ``kind`` in :data:`SUBJECT_KINDS`).

    The subject DN is compared as a set of RDNs (order-insensitive, as node-oidc-provider does), values
    exactly; DNS names and e-mail addresses case-insensitively; IP addresses as addresses; URIs exactly.
    """

    kind: str
    value: str

    def __post_init__(self) -> None:
        if self.kind not in SUBJECT_KINDS:
            raise ValueError(f"tls_client_auth subject kind must be one of {', '.join(SUBJECT_KINDS)}")
        if self.kind == "subject_dn":
            x509.Name.from_rfc4514_string(self.value)  # ValueError now rather than at each request
        if self.kind == "san_ip":
            ipaddress.ip_address(self.value)

    def matches(self, certificate: x509.Certificate) -> bool:
        if self.kind == "subject_dn":
            return _rdn_set(certificate.subject) == _rdn_set(x509.Name.from_rfc4514_string(self.value))
        try:
            names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        if self.kind == "san_dns":
            return self.value.lower() in (name.lower() for name in names.get_values_for_type(x509.DNSName))
        if self.kind == "san_email":
            return self.value.lower() in (name.lower() for name in names.get_values_for_type(x509.RFC822Name))
        if self.kind == "san_uri":
            return self.value in names.get_values_for_type(x509.UniformResourceIdentifier)
        return ipaddress.ip_address(self.value) in names.get_values_for_type(x509.IPAddress)
