"""The signer contract: :class:`Signer` (signs), :class:`SignerType` (a registered kind of signer), :class:`BuiltKey`.

The assertion code builds headers and claims and asks a :class:`Signer` for the signature
alone (:mod:`airflow_jwt_provider.signing.jws` says why that is enough), so a key in an HSM
or a KMS signs exactly like a key loaded on the worker.

A kind of signer is registered in the ``airflow_jwt_provider.signers`` entry-point group (the
provider's own ``local``, ``pkcs11`` and ``aws_kms`` too): its registration object is a
:class:`SignerType`, which parses its settings from the connection (the connection layer's
:class:`~airflow_jwt_provider.connection.signer_settings.SignerRegistration`) and builds a
signer for one key. Writing one for a GCP KMS, Azure Key Vault or Vault transit key takes one
module and one entry point; see "Another place for the key: a signer of your own" in docs/keys.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from airflow_jwt_provider.common.registry import RegistrationError
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.connection.signer_settings import SIGNERS, SignerRegistration
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.signing.jws import (
    DETERMINISTIC_ALGORITHMS,
    SigningPublicKey,
    describe_public_key,
    public_key_fingerprint,
)

if TYPE_CHECKING:
    from cryptography import x509

#: What a signer signs to derive its key-holder secret (never sent anywhere; versioned so a new
#: derivation never reads entries sealed by an older one).
KEY_HOLDER_CONTEXT = b"airflow-jwt-provider token cache key-holder secret v1"


@runtime_checkable
class Signer(Protocol):
    """Signs JWS signing inputs with one private key; knows the key's public half.

    Implement this to sign with a key the provider has no backend for (a GCP KMS, Azure
    Key Vault or Vault transit key...): the assertion code calls only these members.

    * ``algorithm``: the JWS ``alg`` this signer produces (``RS256``, ``PS256``, ``ES256``...).
    * ``key_id``: the ``kid`` the key is known by, or ``None`` (a connection's ``key_id``
      setting wins over it).
    * ``certificate``: the X.509 certificate of the key, if one is known (needed for the
      ``x5t``/``x5t#S256`` headers and shown by ``airflow jwt-bearer inspect``).
    * ``public_key``: the public half (for the cache fingerprint and for export).
    * ``sign(signing_input)``: the JWS signature of ``signing_input``, in JWS form
      (``R || S`` for ECDSA). Called once per assertion; may block on I/O (an HSM or a KMS
      round trip), never called on the triggerer's event loop.
    """

    @property
    def algorithm(self) -> str: ...

    @property
    def key_id(self) -> str | None: ...

    @property
    def certificate(self) -> x509.Certificate | None: ...

    @property
    def public_key(self) -> SigningPublicKey: ...

    def sign(self, signing_input: bytes) -> bytes: ...


class DeviceSigner:
    """What a signer whose private key stays in a device (an HSM, a KMS) knows once it is built.

    Subclasses set ``_algorithm``, ``_public_key`` and ``_certificate`` when they are built and
    implement ``sign``. ``key_id`` is ``None``: a device's own key identifier (a PKCS#11
    ``CKA_ID``, a KMS key ARN) is not a ``kid`` anyone registered with a vendor; the connection's
    ``key_id`` setting names that.
    """

    _algorithm: str
    _public_key: SigningPublicKey
    _certificate: x509.Certificate | None

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @property
    def key_id(self) -> str | None:
        return None

    @property
    def certificate(self) -> x509.Certificate | None:
        return self._certificate

    @property
    def public_key(self) -> SigningPublicKey:
        return self._public_key


@dataclass(frozen=True)
class BuiltKey:
    """One key of the connection, ready to sign.

    :param name: the key as the connection names it (keystore alias as the store spells it,
        PKCS#11 label, KMS key id); ``None`` for a PEM or JSON key.
    :param key_id: the ``kid`` its assertions carry: the connection's kid for this key, else the
        key's own (a Google ``private_key_id``), else none.
    :param issuer: ``iss`` the key material names (a Google key's ``client_email``).
    :param token_uri: the token endpoint the key material names (a Google key's ``token_uri``).
    """

    signer: Signer
    name: str | None
    key_id: str | None = None
    issuer: str | None = None
    token_uri: str | None = None

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.signer.public_key)

    def describe(self) -> str:
        """``key 'new' (kid 'k2', RSA-2048, RS256, SHA-256 3f2a…)``: what a log line says about it."""
        name = f"key {self.name!r}" if self.name else "the key"
        kid = f"kid {self.key_id!r}" if self.key_id else "no kid"
        public_key = describe_public_key(self.signer.public_key)
        return f"{name} ({kid}, {public_key}, {self.signer.algorithm}, SHA-256 {self.fingerprint[:16]}…)"


class DeviceSignerSettings:
    """What the settings of a signer whose key stays in a device share (mixed into their dataclasses).

    A device holds no certificate, or one the connection may override with ``certificate_file``;
    errors about the key name that file when it is set, else ``key_alias``. A device never names
    a token endpoint.
    """

    certificate_file: str | None

    @property
    def key_field(self) -> str:
        return "certificate_file" if self.certificate_file else "key_alias"

    @property
    def names_token_endpoint(self) -> bool:
        return False


S = TypeVar("S")


def own_settings(settings: JwtBearerSettings, kind: type[S]) -> S:
    """``settings.signer`` as the settings type ``kind`` a signer type builds from (anything else is a bug)."""
    signer = settings.signer
    if not isinstance(signer, kind):
        raise TypeError(f"a {kind.__name__} was expected, got {signer!r}")
    return signer


@runtime_checkable
class SignerType(SignerRegistration, Protocol):
    """A registered kind of signer: parses its settings (:class:`SignerRegistration`) and builds signers.

    * ``build(settings, name)``: the key ``name`` (an entry of ``key_alias``; ``None`` when the
      connection lists none) ready to sign, with what its key material says about itself
      (:class:`BuiltKey`; the ``kid`` is filled in by the caller). Errors are
      :class:`~airflow_jwt_provider.exceptions.KeystoreError` or
      :class:`~airflow_jwt_provider.exceptions.JwtBearerConfigError` naming the setting at fault.
      Called once per hook (building should be cached per process when it is slow).
    """

    def build(self, settings: JwtBearerSettings, name: str | None) -> BuiltKey: ...


def signer_type(settings: JwtBearerSettings) -> SignerType:
    """The registration of the connection's signer, able to build (a registration that cannot is refused)."""
    if settings.signer is None:
        raise JwtBearerConfigError(
            f"Connection {settings.conn_id!r}: assertion_source {settings.source.source!r} signs nothing with a key "
            "of the connection, so it has no signer",
            field="signer",
        )
    name = settings.signer.signer
    try:
        registration = SIGNERS.get(name)
    except RegistrationError as exc:
        raise JwtBearerConfigError(f"Connection {settings.conn_id!r}: signer {name!r}: {exc}", field="signer") from None
    if not isinstance(registration, SignerType):
        raise JwtBearerConfigError(
            f"Connection {settings.conn_id!r}: signer {name!r} is registered without a build(settings, name) "
            "method, so it cannot sign; see 'a signer of your own' in the documentation (docs/keys.md)",
            field="signer",
        )
    return registration


def key_holder_secret(signer: Signer) -> bytes | None:
    """32 bytes that only a holder of ``signer``'s private key can compute, or ``None`` if it cannot tell.

    The shared token cache derives the key that encrypts tokens at rest from it, so that reading a
    cached token takes what minting one takes. A signer may define ``key_holder_secret()`` itself
    (the local signer hashes its private key). Any other signer, a remote one whose private key is
    not readable (PKCS#11, a KMS), is asked to sign a fixed context string: with a deterministic
    algorithm (RS256/384/512, EdDSA) the signature is the same every time and is a secret only the
    key holder can produce. ECDSA and PSS signatures are randomised, so such a signer gives ``None``
    and the caller must find secret material elsewhere (the client secret) or refuse.
    """
    own = getattr(signer, "key_holder_secret", None)
    if callable(own):
        secret = own()
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise TypeError(f"{type(signer).__name__}.key_holder_secret() must return at least 16 bytes")
        return secret
    if signer.algorithm not in DETERMINISTIC_ALGORITHMS:
        return None
    return hashlib.sha256(b"signature:" + signer.sign(KEY_HOLDER_CONTEXT)).digest()
