"""Load the signing key (and its certificate) from a keystore, a PEM file or a Google JSON key.

The format is detected from the content, never from the file name: Java 9+ ``keytool``
writes PKCS#12 into ``something.jks`` unless told otherwise. Decrypting a keystore is
slow (JCEKS: ~200 ms, any RSA key: ~30 ms for cryptography's key check), so loaded keys
are cached per process by a digest of the material and the secrets that open it: two
connections, hooks or tasks on the same keystore pay for one decryption.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from airflow_jwt_provider.common.process_cache import ProcessCache
from airflow_jwt_provider.connection.kinds import KeystoreType
from airflow_jwt_provider.exceptions import KeystoreError
from airflow_jwt_provider.signing.jws import (
    ES_CURVES,
    MIN_RSA_BITS,
    SigningPublicKey,
    describe_public_key,
    public_key_fingerprint,
)
from airflow_jwt_provider.signing.key_files.formats import READERS, Entry, FormatContext
from airflow_jwt_provider.signing.key_files.source import KeyRequest, detect_keystore_type, read_material

SigningPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A private key ready to sign, with what the keystore says about it.

    ``issuer``, ``key_id`` and ``token_uri`` are filled from a Google service-account key
    (``client_email``, ``private_key_id``, ``token_uri``); keystores leave them ``None``.
    """

    private_key: SigningPrivateKey
    store_type: KeystoreType
    alias: str | None = None
    certificate: x509.Certificate | None = None
    issuer: str | None = None
    key_id: str | None = None
    token_uri: str | None = None
    fingerprint: str = field(default="", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", public_key_fingerprint(self.public_key))

    def __repr__(self) -> str:
        return (
            f"SigningKey(store_type={self.store_type.value!r}, alias={self.alias!r}, "
            f"key={self.describe()}, fingerprint={self.fingerprint[:16]}…)"
        )

    @property
    def public_key(self) -> SigningPublicKey:
        return self.private_key.public_key()

    def describe(self) -> str:
        """A short human description, e.g. ``RSA-2048`` or ``EC-secp256r1``."""
        return describe_public_key(self.public_key)

    @property
    def not_after(self) -> datetime | None:
        """When the certificate expires (UTC); ``None`` without a certificate."""
        return self.certificate.not_valid_after_utc if self.certificate is not None else None


#: Loaded keys by a digest of the material and the secrets that open it.
KEY_CACHE: ProcessCache[SigningKey] = ProcessCache()


def load_signing_key(request: KeyRequest) -> SigningKey:
    """Return the signing key ``request`` designates, from the process cache when possible."""
    material = read_material(request.source)
    digest = hashlib.sha256()
    for part in (
        material,
        (request.keystore_type.value if request.keystore_type else "").encode(),
        (request.keystore_password or "").encode(),
        (request.key_alias or "").lower().encode(),
        (request.key_password or "").encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return KEY_CACHE.get_or_load(digest.hexdigest(), lambda: _KeyLoader(request, material).load())


def load_every_signing_key(request: KeyRequest) -> list[SigningKey]:
    """Every private-key entry of the key material, in the store's order (``key_alias`` is ignored).

    For inspection (``airflow jwt-bearer inspect``): nothing is cached, every entry is decrypted.
    """
    return _KeyLoader(request, read_material(request.source)).load_every()


class _KeyLoader:
    """Turns key material into a :class:`SigningKey`; one reader per format lists its entries."""

    def __init__(self, request: KeyRequest, material: bytes) -> None:
        self.request = request
        self.material = material
        self.field = request.source.field_name
        self.where = f"{self.field} {request.source.path!r}" if request.source.path else "the inline private_key"

    def error(self, problem: str, field_name: str | None = None) -> KeystoreError:
        return KeystoreError(f"{self.where}: {problem}", field=field_name or self.field)

    def load(self) -> SigningKey:
        """The entry ``key_alias`` names (or the only one), decrypted."""
        return self._signing_key(self._select(self._entries()))

    def load_every(self) -> list[SigningKey]:
        """Every entry, decrypted, in the store's order."""
        entries = self._entries()
        if not entries:
            raise self.error("holds no private-key entry; keytool -list shows what it contains")
        return [self._signing_key(entry) for entry in entries]

    def _signing_key(self, entry: Entry) -> SigningKey:
        private_key = _signing_private_key(entry.open(), self.error)
        key = SigningKey(
            private_key=private_key,
            store_type=entry.store_type,
            alias=entry.alias,
            certificate=_matching_certificate(private_key, entry.certificates()),
            issuer=entry.issuer,
            key_id=entry.key_id,
            token_uri=entry.token_uri,
        )
        _check_key_strength(key, self.error)
        return key

    def _entries(self) -> list[Entry]:
        detected = detect_keystore_type(self.material)
        if detected is None:
            raise self.error(
                "is not a keystore (JKS, JCEKS, PKCS#12), a PEM private key or a service-account "
                "JSON key; check that the path or pasted value is the key material",
            )
        declared = self.request.keystore_type
        if declared is not None and declared != detected:
            raise self.error(
                f"keystore_type says {declared.value!r} but the content is {detected.value!r} (Java 9+ keytool "
                "writes PKCS#12 by default, whatever the file name); remove keystore_type to let "
                f"the provider detect it, or set it to {detected.value!r}",
                "keystore_type",
            )
        return READERS[detected](FormatContext(self.material, self.request, self.where, self.error))

    # -- formats ------------------------------------------------------------------------

    # -- entry selection ----------------------------------------------------------------------

    def _select(self, entries: list[Entry]) -> Entry:
        """The entry named by key_alias (case-insensitive), or the only one.

        Formats without names (PEM, Google JSON) hold one key, which key_alias does not select.
        """
        if not entries:
            raise self.error("holds no private-key entry; keytool -list shows what it contains")
        if len(entries) == 1 and entries[0].alias is None:
            return entries[0]
        by_alias = {entry.alias or "": entry for entry in entries}
        wanted = self.request.key_alias
        names = ", ".join(sorted(by_alias))
        if wanted is None:
            if len(entries) > 1:
                raise self.error(
                    f"holds several private-key entries ({names}); set key_alias to the one to sign with",
                    "key_alias",
                )
            return entries[0]
        by_folded = {alias.lower(): entry for alias, entry in by_alias.items()}
        found = by_folded.get(wanted.lower())
        if found is None:
            raise self.error(f"has no private-key entry {wanted!r}; its entries are: {names}", "key_alias")
        return found


def _matching_certificate(
    private_key: SigningPrivateKey, certificates: list[x509.Certificate]
) -> x509.Certificate | None:
    """The certificate whose public key is ``private_key``'s (keystores order chains leaf first)."""
    wanted = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for certificate in certificates:
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if spki == wanted:
            return certificate
    return None


def _signing_private_key(private_key: PrivateKeyTypes, error: Callable[[str], KeystoreError]) -> SigningPrivateKey:
    """``private_key`` if its type has a JWS algorithm here (RSA, EC, Ed25519); else the error naming those."""
    if isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        return private_key
    raise error(f"the key type {type(private_key).__name__} cannot sign a JWT here; use RSA, EC or Ed25519")


def _check_key_strength(key: SigningKey, error: Callable[[str], KeystoreError]) -> None:
    private_key = key.private_key
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < MIN_RSA_BITS:
            raise error(
                f"the RSA key has {private_key.key_size} bits; RFC 7518 requires at least {MIN_RSA_BITS}. "
                "Generate a new key pair (keytool -genkeypair -keyalg RSA -keysize 2048 ...)"
            )
    elif isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name not in ES_CURVES.values():
        raise error(f"the EC key is on curve {private_key.curve.name}; JWS signs with P-256, P-384 or P-521 only")
